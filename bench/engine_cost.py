"""The engine's cost per node on a 1,000-node chain.

Three cases, measured in interleaved rounds so that they share the machine's noise:
- engine, chain: `execute()` on trigger -> N transforms, no HTTP, no store, emit appends to a list;
- engine, fan-out: trigger -> N parallel transforms -> one join transform;
- run manager + SQLite, chain: the same chain started with `RunManager.start` on a real SQLite
  store (a tmp dir), until the run's end is committed: the journal's group commits included.

    python -m bench.engine_cost [--nodes 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from bench import report, workflows
from bench.results import Figure, Section
from flowtrux.engine.events import NodeEvent
from flowtrux.engine.graph import Graph
from flowtrux.engine.scheduler import Limits, execute
from flowtrux.engine.states import RunStatus
from flowtrux.runs.manager import RunManager, RunSettings, open_run_manager
from flowtrux.store.database import Connection, Database
from flowtrux.store.store import Store, open_store
from flowtrux.store.workflows import Workflow

T = TypeVar("T")

BODY = {"x": 1}
EXPECTED_OUTPUT = {"i": 1}  # what every transform renders from BODY, the last one included


class WrongResult(RuntimeError):
    pass


@attrs.frozen
class Timing:
    seconds: float
    transactions: int | None = None  # write transactions the run used (store case only)


@attrs.frozen
class Case:
    key: str
    title: str
    nodes: int  # the trigger and every other node
    measure: Callable[[], Awaitable[Timing]]


@attrs.define
class CountingDatabase:
    """The store's database, counting write transactions: each `write` is one."""

    inner: Database
    writes: int = 0

    async def read(self, query: Callable[[Connection], T]) -> T:
        return await self.inner.read(query)

    async def write(self, change: Callable[[Connection], T]) -> T:
        self.writes += 1
        return await self.inner.write(change)

    async def takes_writes(self, probe: Callable[[Connection], object], within_s: float) -> bool:
        return await self.inner.takes_writes(probe, within_s)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise WrongResult(what)


def engine_case(key: str, title: str, doc: tuple[list[Any], list[Any]]) -> Case:
    nodes, edges = doc

    async def measure() -> Timing:
        graph = Graph.from_json(nodes, edges)  # fresh: its indexes are built inside the run
        events: list[NodeEvent] = []
        started = time.perf_counter()
        output = await execute(graph, BODY, events.append, Limits())
        elapsed = time.perf_counter() - started
        check(output == EXPECTED_OUTPUT, f"{key}: output {output!r}")
        check(len(events) == 2 * len(nodes), f"{key}: {len(events)} events")
        return Timing(elapsed)

    return Case(key, title, len(nodes), measure)


def store_case(manager: RunManager, workflow: Workflow, database: CountingDatabase) -> Case:
    async def measure() -> Timing:
        writes_before = database.writes
        started = time.perf_counter()
        run = await manager.start(workflow, dict(BODY), started_by=None)
        await run.finished.wait()
        elapsed = time.perf_counter() - started
        check(run.status is RunStatus.COMPLETED, f"store_chain: {run.status}")
        # Every write but the one that created the execution's row was the journal's.
        return Timing(elapsed, database.writes - writes_before - 1)

    title = "run manager + SQLite: chain"
    return Case("store_chain", title, len(workflow.nodes), measure)


@attrs.frozen
class CountedStore:
    store: Store  # over `database`
    database: CountingDatabase
    manager: RunManager


@asynccontextmanager
async def open_counted_store(db_path: Path) -> AsyncIterator[CountedStore]:
    """A fresh SQLite store whose write transactions are counted, and a run manager on it. The
    lease is long so that its renewals stay out of the counts."""
    async with open_store(f"sqlite:///{db_path}") as plain:
        database = CountingDatabase(plain.db)
        store = Store(plain.url, database)
        async with open_run_manager(store, RunSettings(lease_s=3600)) as manager:
            yield CountedStore(store, database, manager)


async def save_chain(store: Store, length: int) -> Workflow:
    space = await store.workspaces.ensure("Bench")
    nodes, edges = workflows.transform_chain(length)
    return await store.workflows.create(space.id, "Chain", nodes, edges)


async def run_rounds(cases: list[Case], repeat: int) -> dict[str, list[Timing]]:
    """`repeat` rounds, each running every case once."""
    timings: dict[str, list[Timing]] = {case.key: [] for case in cases}
    for _ in range(repeat):
        for case in cases:
            timings[case.key].append(await case.measure())
    return timings


async def benchmark(length: int, repeat: int, db_path: Path) -> dict[str, dict[str, Any]]:
    async with open_counted_store(db_path) as counted:
        workflow = await save_chain(counted.store, length)
        cases = [
            engine_case("engine_chain", "engine: chain", workflows.transform_chain(length)),
            engine_case("engine_fan_out", "engine: fan-out + join", workflows.fan_out(length)),
            store_case(counted.manager, workflow, counted.database),
        ]
        timings = await run_rounds(cases, repeat)
    return {case.key: summary(case, timings[case.key]) for case in cases}


def summary(case: Case, timings: list[Timing]) -> dict[str, Any]:
    seconds = [timing.seconds for timing in timings]
    figures: dict[str, Any] = {
        "title": case.title,
        "nodes": case.nodes,
        "min_ms": round(min(seconds) * 1000, 3),
        "median_ms": round(statistics.median(seconds) * 1000, 3),
        "min_us_per_node": round(min(seconds) / case.nodes * 1e6, 2),
        "median_us_per_node": round(statistics.median(seconds) / case.nodes * 1e6, 2),
    }
    transactions = [timing.transactions for timing in timings if timing.transactions is not None]
    if transactions:
        # Per node: a node_start event, a node_complete event and its log; per run: the start
        # and terminal events and the terminal status.
        records = 3 * case.nodes + 3
        figures["journal_transactions_median"] = statistics.median(transactions)
        figures["journal_transactions_max"] = max(transactions)
        figures["records_per_transaction"] = round(records / statistics.median(transactions), 1)
    return figures


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Median cost per node of each case over that of the engine alone on the chain."""
    base = results["engine_chain"]["median_us_per_node"]
    return {key: round(figures["median_us_per_node"] / base, 2) for key, figures in results.items()}


COLUMNS = {  # summary key -> table header
    "nodes": "nodes",
    "min_ms": "min ms",
    "median_ms": "median ms",
    "min_us_per_node": "min µs/node",
    "median_us_per_node": "median µs/node",
}


def print_results(results: dict[str, dict[str, Any]], context: dict[str, Any], repeat: int) -> None:
    print("FlowTrux: cost per node (all nodes counted, the trigger and the join included)")
    print(f"{report.describe(context)}; {repeat} interleaved rounds")
    relative = ratios(results)
    rows = [
        [figures["title"], *(figures[column] for column in COLUMNS), relative[key]]
        for key, figures in results.items()
    ]
    print(report.table(["case", *COLUMNS.values(), "per node vs engine chain"], rows))
    store = results["store_chain"]
    print(
        f"journal: {store['journal_transactions_median']} transactions per run (median; max"
        f" {store['journal_transactions_max']}), {store['records_per_transaction']} records each"
    )


async def run(length: int, repeat: int) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="flowtrux-bench-") as tmp:
        return await benchmark(length, repeat, Path(tmp) / "bench.db")


async def measure(quick: bool) -> Section:
    """For `python -m bench`."""
    length, repeat = 1000, 3 if quick else 20
    results = await run(length, repeat)
    relative = ratios(results)
    figures = tuple(
        Figure(f"{found['title']} (median)", found["median_us_per_node"], "µs/node", None,
               f"min {found['min_us_per_node']}; {relative[key]}x the engine chain")
        for key, found in results.items()
    )  # fmt: skip
    store = results["store_chain"]
    notes = (
        f"{repeat} interleaved rounds of {length} transforms, in the bench's process, no HTTP;"
        f" the journal: {store['journal_transactions_median']} transactions per run (median),"
        f" {store['records_per_transaction']} records each",
    )
    title = "Engine and journal cost per node (in process, no HTTP)"
    return Section("engine_cost", title, figures, notes, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="transforms (default 1000)")
    parser.add_argument("--repeat", type=int, default=20, help="rounds (default 20)")
    args = parser.parse_args()
    report.quiet_logs()
    results = trio.run(run, args.nodes, args.repeat)
    context = report.context("trio")
    print_results(results, context, args.repeat)
    report.print_json(
        {
            "benchmark": "engine_cost",
            **context,
            "transforms": args.nodes,
            "repeat": args.repeat,
            "results": results,
            "median_per_node_vs_engine_chain": ratios(results),
        }
    )


if __name__ == "__main__":
    main()
