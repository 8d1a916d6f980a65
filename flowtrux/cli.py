"""The `flowtrux` command: serve, demo, users create."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import attrs
import trio

from flowtrux import demo
from flowtrux.access import Role
from flowtrux.config import ENV_PREFIX, InvalidSetting, Settings
from flowtrux.http.app import create_app
from flowtrux.http.serve import graceful_shutdown, hypercorn_config, serve
from flowtrux.http.workers import serve_workers
from flowtrux.logs import configure_logging
from flowtrux.passwords import hash_password
from flowtrux.store.store import UnsupportedDatabase, open_store, sqlite_path

DEFAULT_CONFIG = Path("hypercorn.toml")
DEMO_DATABASE = "sqlite:///./flowtrux-demo.db"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load({"database_url": args.database}, config_file=args.config)
        sqlite_path(settings.database_url)
    except (InvalidSetting, UnsupportedDatabase) as exc:
        print(f"flowtrux: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if getattr(args, "workers", 1) > 1:
        try:
            return serve_workers(settings, args.config, _bind(args), args.workers)
        except OSError as exc:  # e.g. the port is taken
            print(f"flowtrux: cannot serve: {exc}", file=sys.stderr)
            return 1
    try:
        return int(trio.run(args.command, args, settings) or 0)
    except ExceptionGroup as group:
        refused, other = group.split(OSError)  # e.g. the port is taken: no traceback for that
        if refused is None or other is not None:
            raise
        print(f"flowtrux: cannot serve: {_first_leaf(refused)}", file=sys.stderr)
        return 1


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowtrux", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, handler: object, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.set_defaults(command=handler)
        sub.add_argument("--database", help="sqlite:///path (env FLOWTRUX_DATABASE_URL)")
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="hypercorn.toml")
        return sub

    for name, handler, help in (
        ("serve", _serve, "apply migrations and serve"),
        ("demo", _demo, "seed a demo user and workflow on SQLite, then serve"),
    ):
        sub = command(name, handler, help)
        sub.add_argument("--host", default=None, help="default: hypercorn.toml's bind or 127.0.0.1")
        sub.add_argument("--port", type=int, default=None, help="default: 8000")
        if name == "serve":
            sub.add_argument(
                "--workers", type=_positive, default=1, help="processes serving (default: 1)"
            )

    users = commands.add_parser("users", help="manage users").add_subparsers(required=True)
    create = users.add_parser("create", help="create a user, or add one to a workspace")
    create.set_defaults(command=_create_user)
    create.add_argument("--database")
    create.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--name")
    create.add_argument("--workspace", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a number of processes, 1 or more, not {text!r}")
    return int(text)


def _bind(args: argparse.Namespace) -> str | None:
    if args.host is None and args.port is None:
        return None
    port = 8000 if args.port is None else args.port
    return f"{args.host or '127.0.0.1'}:{port}"


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    app = create_app(settings)
    config = hypercorn_config(args.config, _bind(args), settings)
    async with graceful_shutdown(app) as shutdown_trigger:
        await serve(app, config, shutdown_trigger=shutdown_trigger)


async def _demo(args: argparse.Namespace, settings: Settings) -> None:
    """Serve the demo's customer API on loopback, seed the demo, and serve FlowTrux until a
    signal. Workflows may reach that one service (its address and port, no other), unless
    FLOWTRUX_HTTP_ALLOW_CIDRS says what they may reach."""
    if not (args.database or _env("DATABASE_URL")):
        settings = attrs.evolve(settings, database_url=DEMO_DATABASE)
    async with trio.open_nursery() as customer_api:
        api_config = hypercorn_config(None, "127.0.0.1:0", settings)
        api_config.errorlog = logging.getLogger("flowtrux.demo.customer_api")
        api_config.errorlog.setLevel(logging.WARNING)  # its errors, not a second "Running on"
        [api_url] = await customer_api.start(
            partial(serve, demo.customer_api, api_config, shutdown_trigger=trio.sleep_forever)
        )
        if not _env("HTTP_ALLOW_CIDRS"):
            opened = api_url.removeprefix("http://")  # 127.0.0.1:PORT
            settings = attrs.evolve(settings, http_allow_cidrs=opened)
        app = create_app(settings)
        async with open_store(settings.database_url) as store:
            workflow = await demo.seed(store, api_url)
        config = hypercorn_config(args.config, _bind(args) or "127.0.0.1:8000", settings)
        async with graceful_shutdown(app) as shutdown_trigger, trio.open_nursery() as nursery:
            urls = await nursery.start(
                partial(serve, app, config, shutdown_trigger=shutdown_trigger)
            )
            print(_demo_banner(urls[0], workflow.id, api_url), flush=True)
        customer_api.cancel_scope.cancel()


def _env(name: str) -> bool:
    return f"{ENV_PREFIX}{name}" in os.environ


def _demo_banner(url: str, workflow_id: str, api_url: str) -> str:
    login = shlex.quote(f'{{"email":"{demo.DEMO_EMAIL}","password":"{demo.DEMO_PASSWORD}"}}')
    stream = f"{url}/api/workflows/{workflow_id}/execute/stream"
    return "\n".join(
        [
            "",
            f"FlowTrux demo is running at {url}",
            f"  login:    {demo.DEMO_EMAIL} / {demo.DEMO_PASSWORD}",
            f"  workflow: {demo.DEMO_WORKFLOW} ({workflow_id})",
            f"  its http node calls the demo's customer API at {api_url}",
            "",
            "Stream a run (log in, then watch every node as it executes):",
            f"  curl -s -c flowtrux-demo.cookies -H 'Content-Type: application/json' -d {login}"
            f" {url}/api/auth/login && \\",
            f"  curl -N -b flowtrux-demo.cookies -X POST -H 'Content-Type: application/json'"
            f' -d \'{{"priority":"high"}}\' {stream}',
            "",
            "Ctrl+C stops the server (runs still going end CANCELLED first).",
        ]
    )


async def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings.database_url) as store:
        workspace = await store.workspaces.ensure(args.workspace)
        found = await store.users.find_by_email(args.email)
        if found is None:
            name = args.name or args.email.split("@")[0]
            user = await store.users.create(args.email, name, await hash_password(args.password))
            verb = "created"
        else:
            user, verb = found[0], "found"
        await store.workspaces.set_role(workspace.id, user.id, Role(args.role))
    print(f"{verb} {user.email} ({user.id}): {args.role} of {workspace.name} ({workspace.id})")
    return 0
