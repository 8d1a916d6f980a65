"""Close of the connection to CANCELLED committed (goal 5).

`flowtrux serve` (a process of its own, one worker, SQLite; `bench.served`) runs
`trigger -> delay 30 s`. Each run streams it on a fresh connection, reads until the delay's
`node_start`, takes t0 and closes the connection. A worker thread polls the SQLite file with its
own read-only connection and takes t1 when the execution's row reads CANCELLED. HTTP/1.1 and
HTTP/2 (h2c, prior knowledge) take turns.

    python -m bench.cancel_latency [--runs 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
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

from bench import report, served, workflows
from bench.results import Figure, Section, at_most

DELAY_ID = "wait"
PROTOCOLS = ("HTTP/1.1", "HTTP/2")  # HTTP/2 over plain TCP: h2c with prior knowledge
WARMUP_RUNS = 2  # per protocol, not counted: the first connections pay for imports and caches
POLL_INTERVAL_S = 0.0002
POLL_TIMEOUT_S = 5.0
MAX_P99_MS = 10


@attrs.frozen
class Target:
    """The server, and the workflow to run on it."""

    served: served.Served
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


def new_client(target: Target, protocol: str) -> httpx.AsyncClient:
    http2 = protocol == "HTTP/2"
    return target.served.client(http1=not http2, http2=http2)


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
        new_client(target, protocol) as client,
        aconnect_sse(client, "POST", path, json={}) as source,
        aclosing(source.aiter_sse()) as events,
    ):
        if source.response.http_version != protocol:
            raise RuntimeError(f"asked for {protocol}, got {source.response.http_version}")
        watch = CommitWatch(target.served.database, await until_delay_started(events))
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


async def measure(target: Target, runs: int) -> dict[str, list[Sample]]:
    """`runs` runs of each protocol, taking turns, after uncounted warm-up runs."""
    samples: dict[str, list[Sample]] = {protocol: [] for protocol in PROTOCOLS}
    for run in range(WARMUP_RUNS + runs):
        for protocol in PROTOCOLS:
            sample = await cancel_once(target, protocol)
            if run >= WARMUP_RUNS:
                samples[protocol].append(sample)
    return samples


def summary(samples: list[Sample]) -> dict[str, Any]:
    latencies = [sample.latency_ms for sample in samples]
    gaps = [sample.poll_gap_ms for sample in samples]
    return {
        "runs": len(samples),
        "cancelled": sum(sample.status == "CANCELLED" for sample in samples),
        "median_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(report.p90(latencies), 3),
        "p99_ms": round(report.percentile(latencies, 99), 3),
        "max_ms": round(max(latencies), 3),
        "poll_gap_median_ms": round(statistics.median(gaps), 3),
        "poll_gap_max_ms": round(max(gaps), 3),
    }


async def benchmark(runs: int) -> dict[str, dict[str, Any]]:
    async with served.served() as server:
        doc = workflows.chain([workflows.trigger(), workflows.delay(DELAY_ID, 30_000)])
        target = Target(server, await server.create_workflow("Wait", *doc))
        samples = await measure(target, runs)
    return {protocol: summary(found) for protocol, found in samples.items()}


def section(results: dict[str, dict[str, Any]]) -> Section:
    figures = []
    for protocol, found in results.items():
        note = f"{found['cancelled']}/{found['runs']} CANCELLED"
        figures.append(Figure(f"{protocol}: p50", found["median_ms"], "ms", None, note))
        figures.append(Figure(f"{protocol}: p99", found["p99_ms"], "ms", at_most(MAX_P99_MS)))
    notes = (
        "client close (t0) to the row read CANCELLED by a read-only poll of the SQLite file every"
        f" ~{POLL_INTERVAL_S * 1000:g} ms (t1); poll gap (how late t1 may be), median: "
        + ", ".join(f"{key} {value['poll_gap_median_ms']} ms" for key, value in results.items()),
    )
    title = "Goal 5: cancel latency, the client closes -> CANCELLED committed"
    return Section("cancel_latency", title, tuple(figures), notes, results)


COLUMNS = {  # summary key -> table header
    "runs": "runs",
    "cancelled": "CANCELLED",
    "median_ms": "median ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
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
    parser.add_argument("--runs", type=int, default=200, help="runs per protocol (default 200)")
    args = parser.parse_args()
    report.quiet_logs()
    results = trio.run(benchmark, args.runs)
    context = report.context("trio", "hypercorn", "starlette", "httpx", "h2")
    print_results(args.runs, results, context)
    report.print_json(
        {"benchmark": "cancel_latency", **context, "runs": args.runs, "results": results}
    )


if __name__ == "__main__":
    main()
