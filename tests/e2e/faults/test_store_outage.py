"""The store failing under the journal while random runs go on, 16 at a time (HTTP/1.1 and
HTTP/2 together): the service keeps answering (/healthz, the history; new runs a 503
`store_unavailable`), every open stream still ends with exactly one terminal event once the store
is back, nothing is lost, and no execution is left RUNNING. Every run keeps the invariants of
invariants.py."""

import itertools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.e2e.conftest import Server, StartServer
from tests.e2e.faults.harness import (
    create_graphs,
    in_process,
    scenarios,
    verdict_on,
)
from tests.e2e.faults.invariants import Expect, Verdict
from tests.e2e.faults.outage import (
    locked,
    probe_through,
    read_only,
    until_ready,
    why_files_cannot_be_made_read_only,
)
from tests.e2e.faults.scenarios import RunRecord, play_all
from tests.e2e.faults.seeds import Seed
from tests.e2e.processes import post_workflow
from tests.support import chain, transform, trigger

GRAPHS = 16
LOAD_BEFORE_S = 1.0
LOAD_AFTER_S = 1.5
READY_AGAIN_WITHIN_S = 5.0
# An answer sent this long after the store came back may still be a 503: the journal finds the
# store back at its next try (its pauses grow to 2 s).
REFUSALS_AFTER_S = 3.0
Fault = Callable[[Path], AbstractAsyncContextManager[None]]
FAULTS: dict[str, tuple[Fault, float]] = {
    # Well past the 5 s a call waits for a lock: every call that needs the store meanwhile is
    # answered 503 `store_unavailable` within those 5 s (and some slack), and the journal finds
    # the store failing (so /readyz says 503) whatever waited for the store before it.
    "locked": (locked, 9.0),
    "read-only": (read_only, 3.0),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_the_store_failing_under_running_streams_loses_nothing_and_leaves_nothing_running(
    start_server: StartServer, fault: str, fault_seed: Seed, tmp_path: Path
) -> None:
    if fault == "read-only" and (why := await why_files_cannot_be_made_read_only(tmp_path)):
        pytest.skip(f"cannot make the database read-only here: {why}")
    make_fault, fault_s = FAULTS[fault]
    server = await start_server(execute_rate="100000/minute", keepalive_s=1)
    rng = fault_seed.rng(f"store-outage/{fault}")
    verdict = Verdict(fault_seed)
    records: list[RunRecord] = []
    async with (
        in_process(server, "HTTP/1.1") as http1,
        in_process(server, "HTTP/2") as http2,
    ):
        graphs = await create_graphs(http1.shared, rng, GRAPHS)
        probe = await post_workflow(http1.shared, chain(trigger(), transform("t", 1)))
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            for target, first in ((http1, 0), (http2, 1)):
                numbers = itertools.count(first, 2)  # even over HTTP/1.1, odd over HTTP/2
                drawn = scenarios(
                    fault_seed, f"store-outage/{fault}", graphs, target.http_version, numbers
                )
                play = partial(play_all, target, drawn, records, until=done, concurrency=8)
                nursery.start_soon(play)
            await trio.sleep(LOAD_BEFORE_S)
            window = await probe_through(
                make_fault(server.database), http1.shared, probe, verdict, fault, fault_s
            )
            await until_ready(http1.shared, verdict, READY_AGAIN_WITHIN_S)
            await trio.sleep(LOAD_AFTER_S)
            done.set()

    def may_refuse(sent_at: float, answered_at: float) -> bool:
        return answered_at >= window.began and sent_at <= window.back + REFUSALS_AFTER_S

    def when(sent_at: float, answered_at: float | None) -> str:
        answered = "" if answered_at is None else f", answered {answered_at - window.back:+.2f} s"
        return f" (sent {sent_at - window.back:+.2f} s after the store was back{answered})"

    expect = Expect(may_refuse=may_refuse, when=when)
    await verdict_on(fault_seed, server.database, records, expect, verdict)


async def test_a_read_only_store_is_not_ready_even_with_no_run_going(
    server: Server, fault_seed: Seed, tmp_path: Path
) -> None:
    """README: /readyz is 200 when the store is "reachable, migrated and taking writes". With
    no run going the journal writes nothing, so only the calls that need the store find out."""
    if why := await why_files_cannot_be_made_read_only(tmp_path):
        pytest.skip(f"cannot make the database read-only here: {why}")
    verdict = Verdict(fault_seed)
    async with in_process(server, "HTTP/1.1") as target:
        probe = await post_workflow(target.shared, chain(trigger(), transform("t", 1)))
        async with read_only(server.database):
            refused = await target.shared.post(f"/api/workflows/{probe}/execute", json={})
            ready = await target.shared.get("/readyz")
        if refused.status_code != 503 or refused.json()["code"] != "store_unavailable":
            verdict.add(None, f"a new run on a read-only store: {refused.status_code}")
        if ready.status_code != 503:
            verdict.add(
                None,
                f"/readyz answered {ready.status_code} {ready.text} right after a new run was"
                f" refused {refused.status_code} {refused.text}",
            )
        await until_ready(target.shared, verdict, READY_AGAIN_WITHIN_S)
    verdict.assert_none("a read-only store, no run going")
