"""Close of the connection to CANCELLED committed.

The real app under real hypercorn (in this process, on 127.0.0.1:0, SQLite in a tmp dir) runs
`trigger -> delay 30 s`. Each run streams it on a fresh connection, reads until the delay's
`node_start`, takes t0 and closes the connection. A worker thread polls the SQLite file with its
own read-only connection and takes t1 when the execution's row reads CANCELLED.

    python -m bench.cancel_latency [--runs 100]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, closing
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from bench import report, workflows
from flowtrux.access import Role
from flowtrux.config import Settings
from flowtrux.http.app import create_app
from flowtrux.http.serve import hypercorn_config, serve
from flowtrux.passwords import hash_password
from flowtrux.store.store import Store

EMAIL = "bench@example.com"
PASSWORD = "bench password, not a secret"
DELAY_ID = "wait"
PROTOCOLS = ("HTTP/1.1", "HTTP/2")  # HTTP/2 over plain TCP: h2c with prior knowledge
WARMUP_RUNS = 2  # per protocol, not counted: the first connections pay for imports and caches
POLL_INTERVAL_S = 0.0002
POLL_TIMEOUT_S = 5.0


@attrs.frozen
class Server:
    url: str
    store: Store
    db_path: Path


@attrs.frozen
class Target:
    """The workflow to run, and the owner's session cookie to run it with."""

    server: Server
    cookies: httpx.Cookies
    workflow_id: str


@attrs.frozen
class Sample:
    status: str  # the row's status when polling stopped
    latency_ms: float  # t1 - t0
    poll_gap_ms: float  # t1 minus the start of the poll before it: the commit lies in between


@attrs.frozen
class Commit:
    status: str
    seen_at: float  # perf_counter() when the query that read `status` returned
    previous_poll_at: float  # perf_counter() when the poll before it started


async def start_server(nursery: trio.Nursery, db_path: Path, stop: trio.Event) -> Server:
    settings = Settings(database_url=f"sqlite:///{db_path}", execute_rate="1000000/hour")
    app = create_app(settings)
    config = hypercorn_config(None, "127.0.0.1:0")
    urls = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
    return Server(urls[0], app.state.services.store, db_path)


async def seed_owner(store: Store) -> str:
    """An owner of workspace Bench; returns the workspace id."""
    user = await store.users.create(EMAIL, "Bench", await hash_password(PASSWORD))
    space = await store.workspaces.ensure("Bench")
    await store.workspaces.set_role(space.id, user.id, Role.OWNER)
    return space.id


def new_client(server: Server, protocol: str, cookies: httpx.Cookies) -> httpx.AsyncClient:
    http2 = protocol == "HTTP/2"
    return httpx.AsyncClient(
        base_url=server.url, http1=not http2, http2=http2, cookies=cookies, timeout=10
    )


async def log_in_and_create_workflow(server: Server, workspace_id: str) -> Target:
    async with new_client(server, "HTTP/1.1", httpx.Cookies()) as client:
        login = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
        login.raise_for_status()
        nodes, edges = workflows.chain([workflows.trigger(), workflows.delay(DELAY_ID, 30_000)])
        doc = {"workspaceId": workspace_id, "name": "Wait", "nodes": nodes, "edges": edges}
        created = await client.post("/api/workflows", json=doc)
        created.raise_for_status()
        return Target(server, client.cookies, created.json()["workflow"]["id"])


async def until_delay_started(events: AsyncIterator[ServerSentEvent]) -> str:
    """Read events up to the delay's `node_start`; return the execution id."""
    execution_id = ""
    async for event in events:
        data: dict[str, Any] = event.json()
        if event.event == "start":
            execution_id = data["executionId"]
        elif event.event == "node_start" and data["nodeId"] == DELAY_ID:
            return execution_id
    raise RuntimeError("the stream ended before the delay started")


def poll_status(db_path: Path, execution_id: str, started: trio.TaskStatus[None]) -> Commit:
    """In a worker thread: poll the row until it leaves RUNNING (or POLL_TIMEOUT_S passes).

    `started` is called from the Trio thread once the row has been read RUNNING.
    """
    uri = f"file:{db_path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, check_same_thread=False)) as conn:
        query = "SELECT status FROM executions WHERE id = ?"
        poll_at = time.perf_counter()
        status: str = conn.execute(query, (execution_id,)).fetchone()[0]
        trio.from_thread.run_sync(started.started)
        previous_poll_at, deadline = poll_at, poll_at + POLL_TIMEOUT_S
        while status == "RUNNING" and time.perf_counter() < deadline:
            time.sleep(POLL_INTERVAL_S)
            previous_poll_at, poll_at = poll_at, time.perf_counter()
            status = conn.execute(query, (execution_id,)).fetchone()[0]
        return Commit(status, time.perf_counter(), previous_poll_at)


@attrs.define
class CommitWatch:
    """Runs `poll_status` in a worker thread; `nursery.start(watch.run)` returns once it polls."""

    db_path: Path
    execution_id: str
    commit: Commit | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        poll = partial(poll_status, self.db_path, self.execution_id, task_status)
        self.commit = await trio.to_thread.run_sync(poll)


async def cancel_once(target: Target, protocol: str) -> Sample:
    path = f"/api/workflows/{target.workflow_id}/execute/stream"
    async with (
        trio.open_nursery() as nursery,
        new_client(target.server, protocol, target.cookies) as client,
        aconnect_sse(client, "POST", path, json={}) as source,
        aclosing(source.aiter_sse()) as events,
    ):
        if source.response.http_version != protocol:
            raise RuntimeError(f"asked for {protocol}, got {source.response.http_version}")
        watch = CommitWatch(target.server.db_path, await until_delay_started(events))
        await nursery.start(watch.run)
        t0 = time.perf_counter()
        # Leaving the block closes the events, the response and the client, hence the TCP
        # connection (on HTTP/2 httpx sends no RST_STREAM for a response closed early: the
        # connection's close is what the server sees). Nothing may close before t0: httpx's
        # inner generators, once dropped, are closed by Trio's finalizer, and on HTTP/1.1 that
        # closes the connection; so the events are only closed here.
    assert watch.commit is not None
    commit = watch.commit
    return Sample(
        commit.status,
        (commit.seen_at - t0) * 1000,
        (commit.seen_at - commit.previous_poll_at) * 1000,
    )


async def measure(target: Target, protocol: str, runs: int) -> list[Sample]:
    for _ in range(WARMUP_RUNS):
        await cancel_once(target, protocol)
    return [await cancel_once(target, protocol) for _ in range(runs)]


def summary(samples: list[Sample]) -> dict[str, Any]:
    latencies = [sample.latency_ms for sample in samples]
    gaps = [sample.poll_gap_ms for sample in samples]
    return {
        "runs": len(samples),
        "cancelled": sum(sample.status == "CANCELLED" for sample in samples),
        "median_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(report.p90(latencies), 3),
        "max_ms": round(max(latencies), 3),
        "poll_gap_median_ms": round(statistics.median(gaps), 3),
        "poll_gap_max_ms": round(max(gaps), 3),
    }


async def benchmark(runs: int, db_path: Path) -> dict[str, dict[str, Any]]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, db_path, stop)
        target = await log_in_and_create_workflow(server, await seed_owner(server.store))
        results = {
            protocol: summary(await measure(target, protocol, runs)) for protocol in PROTOCOLS
        }
        stop.set()
    return results


COLUMNS = {  # summary key -> table header
    "runs": "runs",
    "cancelled": "CANCELLED",
    "median_ms": "median ms",
    "p90_ms": "p90 ms",
    "max_ms": "max ms",
    "poll_gap_median_ms": "poll gap ms",
}


def print_results(runs: int, results: dict[str, dict[str, Any]], context: dict[str, Any]) -> None:
    print("Close of the connection -> execution row committed CANCELLED (t1 - t0)")
    print(f"{report.describe(context)}; {runs} runs per protocol after {WARMUP_RUNS} warm-up runs")
    rows = [[name, *(figures[key] for key in COLUMNS)] for name, figures in results.items()]
    print(report.table(["protocol", *COLUMNS.values()], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per protocol (default 100)")
    args = parser.parse_args()
    report.quiet_logs()
    with tempfile.TemporaryDirectory(prefix="flowtrux-bench-") as tmp:
        results = trio.run(benchmark, args.runs, Path(tmp) / "bench.db")
    context = report.context("trio", "hypercorn", "starlette", "httpx", "h2")
    print_results(args.runs, results, context)
    report.print_json(
        {"benchmark": "cancel_latency", **context, "runs": args.runs, "results": results}
    )


if __name__ == "__main__":
    main()
