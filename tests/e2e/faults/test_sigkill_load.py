"""`flowtrux serve` killed with SIGKILL under random load (HTTP/1.1 and HTTP/2, 16 runs at a
time), then started again on the same store: the runs in flight at the kill end INTERRUPTED with
their `error` event after everything they had stored, the others keep what they had, Stops and
observers of the dead process's runs (at random Last-Event-IDs) get what api.md promises, every
event any client received is stored, identical, and nothing is left RUNNING."""

import itertools
import random
from functools import partial
from pathlib import Path

import trio

from tests.e2e.faults import stored
from tests.e2e.faults.clients import Reading, Target, observe, stop
from tests.e2e.faults.harness import create_graphs, owner_target, scenarios, verdict_on
from tests.e2e.faults.invariants import Expect, Verdict
from tests.e2e.faults.scenarios import RunRecord, play_all
from tests.e2e.faults.seeds import Seed
from tests.e2e.faults.stored import StoredRun, read_runs, statuses, until_none_running
from tests.e2e.processes import DATABASE, flowtrux, log_in, running, server_env

LEASE_S = "2"  # so that the restarted process ends the dead one's runs within ~2.2 s
GRAPHS = 12
LOAD_S = 2.0  # of load before the kill
IN_FLIGHT = 10  # runs going when the server is killed (of the 16 at a time)
KILL_WITHIN_S = 2.0  # the kill comes then at the latest
AFTER_KILL_S = 1.0  # for the clients to see their connections break
INTERRUPTED_WITHIN_S = 15


async def test_sigkill_under_load_then_restart_interrupts_exactly_the_runs_in_flight(
    tmp_path: Path, fault_seed: Seed
) -> None:
    rng = fault_seed.rng("sigkill")
    database = tmp_path / DATABASE
    env = await server_env(tmp_path, lease_s=LEASE_S, execute_rate="100000/minute")
    serve = flowtrux("serve", "--port", "0")
    records: list[RunRecord] = []
    async with (
        running(serve, env, tmp_path) as (process, url, _),
        owner_target(url, "HTTP/1.1", database, log_in) as http1,
        owner_target(url, "HTTP/2", database, log_in) as http2,
    ):
        graphs = await create_graphs(http1.shared, rng, GRAPHS, slow=GRAPHS // 2)
        done = trio.Event()
        async with trio.open_nursery() as load:
            for target, first in ((http1, 0), (http2, 1)):
                numbers = itertools.count(first, 2)  # even over HTTP/1.1, odd over HTTP/2
                drawn = scenarios(fault_seed, "sigkill", graphs, target.http_version, numbers)
                load.start_soon(
                    partial(play_all, target, drawn, records, until=done, concurrency=8)
                )
            await trio.sleep(LOAD_S)
            await many_in_flight(database)
            killed_at = trio.current_time()
            process.kill()  # SIGKILL: it ends nothing, stores nothing more
            await process.wait()
            done.set()
            await trio.sleep(AFTER_KILL_S)
            load.cancel_scope.cancel()  # clients still waiting on a dead server
    down_until = trio.current_time()
    before = await statuses(database)
    in_flight = frozenset(id for id, status in before.items() if status == "RUNNING")
    snapshot = await read_runs(database, before)
    verdict = Verdict(fault_seed)

    async with (
        running(serve, env, tmp_path) as (_, later_url, _),
        owner_target(later_url, "HTTP/2", database, log_in) as later,
    ):
        await visit_the_dead_runs(later, rng, records, snapshot, in_flight)
        await verdict_on(
            fault_seed,
            database,
            records,
            Expect(interrupted=in_flight, killed_at=killed_at, down_until=down_until),
            await kept_what_they_had(verdict, database, snapshot, in_flight),
        )
    assert in_flight, f"{fault_seed}: no run was in flight at the kill"


async def many_in_flight(database: Path) -> None:
    """Wait (KILL_WITHIN_S at most) for a moment when IN_FLIGHT runs are RUNNING."""
    with trio.move_on_after(KILL_WITHIN_S):
        while True:
            if len(await stored.running(database)) >= IN_FLIGHT:
                return
            await trio.sleep(0.01)


async def visit_the_dead_runs(
    target: Target,
    rng: random.Random,
    records: list[RunRecord],
    snapshot: dict[str, StoredRun],
    in_flight: frozenset[str],
) -> None:
    """Right after the restart, before the lease rules end them: observe some of the runs in
    flight at the kill from a random Last-Event-ID (followed through the store), and Stop
    some (202, or 409 once ended); each goes into its run's record, for the invariants."""
    async with trio.open_nursery() as nursery:
        for record in records:
            if record.execution_id not in in_flight:
                continue
            last = snapshot[record.execution_id].events[-1].seq
            if rng.random() < 0.5:
                reading = Reading("observer", target.http_version, after=rng.randint(0, last))
                record.observers.append(reading)
                nursery.start_soon(
                    partial(observe, target, record.execution_id, reading, in_query=False,
                            leave_after=None)
                )  # fmt: skip
            if rng.random() < 0.3:
                nursery.start_soon(_stop_into, target, record)


async def _stop_into(target: Target, record: RunRecord) -> None:
    assert record.execution_id is not None
    record.stops.append(await stop(target.shared, record.execution_id))


async def kept_what_they_had(
    verdict: Verdict, database: Path, snapshot: dict[str, StoredRun], in_flight: frozenset[str]
) -> Verdict:
    """Once no run is RUNNING: a run in flight at the kill has what it had stored, and then its
    one `error` event; any other run has exactly what it had. Into `verdict`."""
    if left := await until_none_running(database, INTERRUPTED_WITHIN_S):
        verdict.add(None, f"still RUNNING {INTERRUPTED_WITHIN_S} s after the restart: {left}")
    after = await read_runs(database, snapshot)
    for execution_id, before in snapshot.items():
        now = after[execution_id].events
        added = now[len(before.events) :]
        if now[: len(before.events)] != before.events:
            verdict.add(None, f"execution {execution_id}: stored events changed after the kill")
        expected_added = ["error"] if execution_id in in_flight else []
        if [event.name for event in added] != expected_added:
            verdict.add(
                None,
                f"execution {execution_id}: after the restart the store added"
                f" {[(e.seq, e.name) for e in added]}, expected {expected_added}",
            )
    return verdict
