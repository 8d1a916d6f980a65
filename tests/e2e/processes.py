"""The `flowtrux` command as a real process, for tests that need one: signals, exit codes, its
own memory; and an owner made with `flowtrux users create` to log in to it."""

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import trio

from tests.support import Doc

RUNNING_ON = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")


def flowtrux(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowtrux", *args]


async def create_owner(env: dict[str, str], cwd: Path, email: str, password: str) -> None:
    """`flowtrux users create`: `email`, with `password`, owns the workspace Ops in the database
    that `env` names."""
    await trio.run_process(
        flowtrux("users", "create", "--email", email, "--password", password,
                 "--workspace", "Ops", "--role", "owner"),
        env=env, cwd=cwd, capture_stdout=True,
    )  # fmt: skip


def rss_bytes(pid: int) -> int:
    """The resident memory of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@asynccontextmanager
async def running(
    command: list[str], env: dict[str, str], cwd: Path, ready: re.Pattern[bytes] = RUNNING_ON
) -> AsyncIterator[tuple[trio.Process, str, bytearray]]:
    """Start `command`, wait until its output matches `ready` (by default hypercorn's 'Running
    on' line); yield the process, its URL and everything it printed (which keeps growing)."""
    output = bytearray()
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                check=False,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )

        serving = trio.Event()

        async def pump() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.receive_some():
                output.extend(chunk)
                if ready.search(output):
                    serving.set()

        nursery.start_soon(pump)
        with trio.fail_after(20):
            await serving.wait()
        match = RUNNING_ON.search(output)
        assert match is not None
        try:
            yield process, match.group(1).decode(), output
        finally:
            if process.returncode is None:
                process.kill()


EMAIL, PASSWORD = "op@example.com", "pw-pw-pw-pw"  # the owner a test's server process has
DATABASE = "x.db"


async def server_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of `flowtrux serve` on the database `tmp_path / DATABASE`, which has an
    owner who can log in (EMAIL, PASSWORD); `settings` by name, without `FLOWTRUX_`."""
    env = {
        **os.environ,
        "FLOWTRUX_DATABASE_URL": f"sqlite:///{tmp_path / DATABASE}",
        **{f"FLOWTRUX_{name.upper()}": value for name, value in settings.items()},
    }
    await create_owner(env, tmp_path, EMAIL, PASSWORD)
    return env


async def log_in(client: httpx.AsyncClient) -> None:
    """Log `client` in as the owner."""
    login = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text


async def create_workflow(client: httpx.AsyncClient, doc: Doc) -> str:
    """Log in as the owner and create `doc` in their workspace; return the workflow's id."""
    await log_in(client)
    return await post_workflow(client, doc)


async def post_workflow(client: httpx.AsyncClient, doc: Doc) -> str:
    """Create `doc` in the first workspace of `client`'s user; return the workflow's id."""
    workspace_id = (await client.get("/api/auth/me")).json()["workspaces"][0]["id"]
    created = await client.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
    assert created.status_code == 201, f"{doc}: {created.text}"
    workflow_id: str = created.json()["workflow"]["id"]
    return workflow_id
