"""Validation of a 5,000-node workflow, and other clients' wait while one is created.

- validation: `validate_workflow` alone on trigger -> 4,999 transforms, each reading the trigger's
  data and the output of the one before it;
- over HTTP: the real app under real hypercorn (in this process, on 127.0.0.1:0, SQLite in a tmp
  dir); an owner POSTs that workflow to `/api/workflows` (body encoded beforehand) while another
  client, on its own connection, asks `/healthz` every 20 ms; the same with 8,000 transforms,
  which the node limit refuses (the body limit is raised so that it gets that far); and
  `/healthz` alone, with nothing else going on, for comparison.

    python -m bench.workflow_create [--nodes 5000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from bench import report, workflows
from bench.results import Figure, Section
from bench.served import EMAIL, PASSWORD
from flowtrux.access import Role
from flowtrux.config import Settings
from flowtrux.engine.validation import validate_workflow
from flowtrux.http.app import create_app
from flowtrux.http.serve import hypercorn_config, serve
from flowtrux.passwords import hash_password
from flowtrux.store.store import Store

REFUSED_NODES = 8_000
POLL_INTERVAL_S = 0.02
MAX_BODY_BYTES = 4 * 2**20  # room for the refused workflow: the node limit is what refuses it


class WrongResult(RuntimeError):
    pass


@attrs.frozen
class Create:
    seconds: float  # the POST, sent to answered
    healthz_waits: list[float]  # each /healthz answered meanwhile, in seconds


async def seed_owner(store: Store) -> str:
    """An owner of workspace Bench; returns the workspace id."""
    user = await store.users.create(EMAIL, "Bench", await hash_password(PASSWORD))
    space = await store.workspaces.ensure("Bench")
    await store.workspaces.set_role(space.id, user.id, Role.OWNER)
    return space.id


def document(transforms: int) -> dict[str, Any]:
    nodes, edges = workflows.reading_chain(transforms)
    return {"name": f"{len(nodes)} nodes", "nodes": nodes, "edges": edges}


def time_validation(doc: dict[str, Any], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        problems = validate_workflow(doc)
        seconds.append(time.perf_counter() - started)
        if problems:
            raise WrongResult(f"validation: {problems[:3]}")
    return seconds


async def with_healthz_polled(
    url: str, work: Callable[[], Awaitable[float]]
) -> tuple[float, list[float]]:
    """Run `work()` while another client asks `/healthz` every ~20 ms on its own connection;
    what `work()` returned, and how long each `/healthz` took (the one pending at the end too)."""
    waits: list[float] = []
    done = trio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=30) as other:
        (await other.get("/healthz")).raise_for_status()  # connected before the work

        async def poll() -> None:
            while not done.is_set():
                asked = time.perf_counter()
                (await other.get("/healthz")).raise_for_status()
                waits.append(time.perf_counter() - asked)
                await trio.sleep(POLL_INTERVAL_S)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            result = await work()
            done.set()
    return result, waits


async def create_once(url: str, client: httpx.AsyncClient, body: bytes, status: int) -> Create:
    headers = {"content-type": "application/json"}

    async def create() -> float:
        started = time.perf_counter()
        response = await client.post("/api/workflows", content=body, headers=headers)
        seconds = time.perf_counter() - started
        if response.status_code != status:
            raise WrongResult(f"create: {response.status_code} {response.text[:300]}")
        return seconds

    seconds, waits = await with_healthz_polled(url, create)
    return Create(seconds, waits)


async def idle_healthz(url: str, seconds: float) -> list[float]:
    async def nothing() -> float:
        await trio.sleep(seconds)
        return seconds

    _, waits = await with_healthz_polled(url, nothing)
    return waits


async def benchmark(transforms: int, repeat: int, db_path: Path) -> dict[str, Any]:
    settings = Settings(database_url=f"sqlite:///{db_path}", max_body_bytes=MAX_BODY_BYTES)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        app = create_app(settings)
        config = hypercorn_config(None, "127.0.0.1:0")
        [url] = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        workspace_id = await seed_owner(app.state.services.store)
        async with httpx.AsyncClient(base_url=url, timeout=30) as owner:
            login = await owner.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
            login.raise_for_status()
            results: dict[str, Any] = {"idle": await idle_healthz(url, 2.0)}
            for key, count, status in [
                ("accepted", transforms, 201),
                ("refused", REFUSED_NODES - 1, 422),
            ]:
                body = json.dumps({"workspaceId": workspace_id, **document(count)}).encode()
                results[key] = [await create_once(url, owner, body, status) for _ in range(repeat)]
                results[f"{key}_body_bytes"] = len(body)
        stop.set()
    return results


def create_summary(creates: list[Create], body_bytes: int) -> dict[str, Any]:
    seconds = [create.seconds * 1000 for create in creates]
    waits = [wait * 1000 for create in creates for wait in create.healthz_waits]
    return {
        "body_bytes": body_bytes,
        "create_median_ms": round(statistics.median(seconds), 1),
        "create_max_ms": round(max(seconds), 1),
        **healthz_summary(waits),
    }


def healthz_summary(waits_ms: list[float]) -> dict[str, Any]:
    return {
        "healthz_answers": len(waits_ms),
        "healthz_median_ms": round(statistics.median(waits_ms), 1),
        "healthz_p90_ms": round(report.p90(waits_ms), 1),
        "healthz_max_ms": round(max(waits_ms), 1),
    }


async def run(nodes: int, repeat: int) -> dict[str, Any]:
    validation = time_validation(document(nodes - 1), repeat)
    with tempfile.TemporaryDirectory(prefix="flowtrux-bench-") as tmp:
        found = await benchmark(nodes - 1, repeat, Path(tmp) / "bench.db")
    return {
        "validation": {
            "nodes": nodes,
            "min_ms": round(min(validation) * 1000, 1),
            "median_ms": round(statistics.median(validation) * 1000, 1),
        },
        "create_accepted": create_summary(found["accepted"], found["accepted_body_bytes"]),
        "create_refused": create_summary(found["refused"], found["refused_body_bytes"]),
        "idle": healthz_summary([wait * 1000 for wait in found["idle"]]),
    }


async def measure(quick: bool) -> Section:
    """For `python -m bench`."""
    nodes, repeat = (2000, 2) if quick else (5000, 10)
    results = await run(nodes, repeat)
    validation, accepted = results["validation"], results["create_accepted"]
    refused, idle = results["create_refused"], results["idle"]
    figures = (
        Figure(f"validate_workflow, {nodes:,} nodes (median)", validation["median_ms"], "ms"),
        Figure("create over HTTP (median)", accepted["create_median_ms"], "ms", None,
               f"max {accepted['create_max_ms']} ms"),
        Figure("  /healthz meanwhile: p90", accepted["healthz_p90_ms"], "ms", None,
               f"max {accepted['healthz_max_ms']} ms"),
        Figure(f"create of {REFUSED_NODES:,} nodes, refused 422 (median)",
               refused["create_median_ms"], "ms", None,
               f"/healthz max {refused['healthz_max_ms']} ms"),
        Figure("/healthz, nothing else going on: p90", idle["healthz_p90_ms"], "ms", None,
               f"max {idle['healthz_max_ms']} ms"),
    )  # fmt: skip
    notes = (f"{repeat} runs of each case; in the bench's process (client and server share it)",)
    return Section("workflow_create", "Workflow validation and create", figures, notes, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000, help="nodes, trigger included")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each case (default 10)")
    args = parser.parse_args()
    report.quiet_logs()
    results = trio.run(run, args.nodes, args.repeat)
    context = report.context("trio", "hypercorn", "jsonschema")
    print_results(args.nodes, results, context, args.repeat)
    report.print_json({"benchmark": "workflow_create", **context, "repeat": args.repeat, **results})


def print_results(
    nodes: int, results: dict[str, Any], context: dict[str, Any], repeat: int
) -> None:
    print("Workflow validation, and /healthz (polled every 20 ms) while a workflow is created")
    print(f"{report.describe(context)}; {repeat} runs of each case")
    validation = results["validation"]
    print(
        f"validate_workflow, {nodes} nodes: min {validation['min_ms']} ms,"
        f" median {validation['median_ms']} ms"
    )
    columns = ["create_median_ms", "create_max_ms", "healthz_answers", "healthz_median_ms",
               "healthz_p90_ms", "healthz_max_ms"]  # fmt: skip
    rows = [
        [f"create {nodes} nodes (201)", *(results["create_accepted"][c] for c in columns)],
        [f"create {REFUSED_NODES} nodes (422)", *(results["create_refused"][c] for c in columns)],
        ["nothing else (2 s)", "", "", *(results["idle"][c] for c in columns[2:])],
    ]
    headers = ["case", "create median ms", "create max ms", "/healthz answers", "median ms",
               "p90 ms", "max ms"]  # fmt: skip
    print(report.table(headers, rows))


if __name__ == "__main__":
    main()
