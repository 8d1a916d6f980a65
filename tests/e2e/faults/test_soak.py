"""Soak, behind FLOWTRUX_SOAK=1: `flowtrux serve` under 500 concurrent streams (half over HTTP/1.1,
half over HTTP/2) for 60 s, each stream a run read to its end, one after the other. No error (no
failed request, every run COMPLETED, no ERROR in the server's log), no lost event (each stream
1..n with its terminal event last, and every event received is stored, identical), and the
server's memory flat afterwards (its settled RSS after a warm-up round of 500 streams, and after
the soak, with a generous tolerance)."""

import itertools
import os
import re
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from tests.e2e.faults.clients import Reading, Target, client_for, read_events, stream_path
from tests.e2e.faults.harness import owner_target
from tests.e2e.faults.invariants import Verdict
from tests.e2e.faults.seeds import Seed
from tests.e2e.faults.stored import read_runs, until_none_running
from tests.e2e.processes import DATABASE, flowtrux, log_in, post_workflow, running, server_env
from tests.e2e.test_process_faults import settled_rss
from tests.support import chain, delay, transform, trigger

pytestmark = pytest.mark.skipif(
    os.environ.get("FLOWTRUX_SOAK") != "1",
    reason="the soak runs for minutes: set FLOWTRUX_SOAK=1 to run it",
)

STREAMS = 500
SOAK_S = 60.0
H2_STREAMS_PER_CONNECTION = 50  # under hypercorn's 100 concurrent streams a connection
GROWTH_BOUND = 64 * 1024 * 1024  # of the settled RSS after the soak over the one after warm-up
# A run lasts ~3 s, so that 500 streams are ~170 new runs a second: what one server process
# on this 2-core machine takes beside the clients.
SOAK_RUN = chain(
    trigger(),
    delay("first", 1000),
    transform("middle", {"tag": "{{trigger.data.tag}}"}),
    delay("second", 1000),
    transform("last", {"n": "{{trigger.data.n}}"}),
    delay("third", 1000),
    name="Soak",
)
ERROR_LINE = re.compile(rb'"level": "(ERROR|CRITICAL)"|Traceback')


async def stream_for(
    target: Target, workflow_id: str, until: float, readings: list[Reading], number: int
) -> None:
    """One of the soak's streams: runs read to their end, one after the other, until `until`
    (at least one)."""
    for run in itertools.count():
        reading = Reading("starter", target.http_version)
        readings.append(reading)
        await read_events(
            target.shared, "POST", stream_path(workflow_id), reading,
            body={"n": number, "tag": f"run {run}"},
        )  # fmt: skip
        if trio.current_time() >= until:
            return


async def soak_round(targets: list[Target], workflow_id: str, until: float) -> list[Reading]:
    """STREAMS streams spread over `targets` (each shares its connections between its streams),
    until `until` (at least one run each)."""
    readings: list[Reading] = []
    async with trio.open_nursery() as nursery:
        for number in range(STREAMS):
            target = targets[number % len(targets)]
            nursery.start_soon(stream_for, target, workflow_id, until, readings, number)
    return readings


def judge_streams(verdict: Verdict, readings: list[Reading]) -> None:
    """Each stream read to its end: 200, ids 1..n, one terminal event, last, `complete`."""
    for reading in readings:
        ids = [event.seq for event in reading.events]
        names = [event.name for event in reading.events]
        if (
            reading.status != 200
            or not reading.ended_by_server
            or ids != list(range(1, len(ids) + 1))
            or names.count("complete") != 1
            or names[-1] != "complete"
            or reading.malformed
        ):
            verdict.add(None, f"{reading.describe()}: {names} {reading.answer!r}")


async def judge_stored(verdict: Verdict, database: Path, readings: list[Reading]) -> None:
    """Every event any stream received is stored, identical, and the stream had them all."""
    by_id = {r.events[0].json()["executionId"]: r for r in readings if r.events}
    stored = await read_runs(database, by_id)
    for execution_id, reading in by_id.items():
        run = stored.get(execution_id)
        if run is None or run.status != "COMPLETED" or list(run.events) != reading.events:
            status = run and run.status
            verdict.add(None, f"execution {execution_id} ({status}): not stored as received")


async def test_soak_500_streams_for_60_s_lose_nothing_and_leave_memory_flat(
    tmp_path: Path, fault_seed: Seed
) -> None:
    database = tmp_path / DATABASE
    env = await server_env(
        tmp_path, execute_rate="1000000/minute", max_runs_per_workspace=str(2 * STREAMS)
    )
    verdict = Verdict(fault_seed)
    serve = running(flowtrux("serve", "--port", "0"), env, tmp_path)
    async with serve as (process, url, log), AsyncExitStack() as clients:
        http1 = await clients.enter_async_context(owner_target(url, "HTTP/1.1", database, log_in))
        workflow_id = await post_workflow(http1.shared, SOAK_RUN)
        connections = STREAMS // 2 // H2_STREAMS_PER_CONNECTION
        http2 = [
            Target(url, "HTTP/2", await clients.enter_async_context(
                client_for(url, "HTTP/2", http1.shared.cookies)
            ), database)
            for _ in range(connections)
        ]  # fmt: skip
        targets = [http1] * connections + http2  # half of the streams over each
        warm_up = await soak_round(targets, workflow_id, trio.current_time())
        baseline = await settled_rss(process.pid)
        soaked = await soak_round(targets, workflow_id, trio.current_time() + SOAK_S)
        await until_none_running(database, 10)
        after = await settled_rss(process.pid)
    judge_streams(verdict, warm_up + soaked)
    await judge_stored(verdict, database, warm_up + soaked)
    for line in log.splitlines():
        if ERROR_LINE.search(line):
            verdict.add(None, f"the server logged: {line[:500].decode(errors='replace')}")
    growth = after - baseline
    summary = (
        f"{len(soaked)} runs over {STREAMS} streams in {SOAK_S:g} s; server RSS"
        f" {baseline / 2**20:.0f} MiB after warm-up, {after / 2**20:.0f} MiB after the soak"
        f" ({growth / 2**20:+.1f} MiB)"
    )
    print(summary)
    if growth > GROWTH_BOUND:
        verdict.add(None, f"the server's RSS grew by {growth / 2**20:.0f} MiB over the soak")
    verdict.assert_none(summary)
