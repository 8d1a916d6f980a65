"""The scheduler when a run is stopped: the caller's cancellation, the run timeout, and the rule
that every node that started completes exactly once. Time is virtual (autojump_clock)."""

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from flowtrux.engine.errors import NodeError
from flowtrux.engine.events import NodeEvent
from flowtrux.engine.graph import Graph
from flowtrux.engine.nodes import NODE_TYPES, NodeContext, NodeResult, NodeType
from flowtrux.engine.scheduler import NOT_STARTED, Limits, RunFailed, execute
from flowtrux.engine.states import NodeStatus
from tests.engine.builders import Recorder, delay, fail, graph, node, transform, trigger

LIMITS = Limits()


def two_slow_branches() -> Graph:
    return graph(
        [
            trigger(),
            delay("a", 1000),
            delay("b", 2000),
            transform("after_a", 1),
            transform("join", 2),
        ],
        "trigger > a > after_a",
        "a > join",
        "trigger > b > join",
    )


async def test_cancelling_the_caller_cancels_the_running_node_and_starts_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), delay("wait", 1000), transform("after", 1)], "trigger > wait > after")
    rec = Recorder()
    finished = False
    with trio.move_on_after(0.5) as scope:
        await execute(g, {}, rec.append, LIMITS)
        finished = True
    assert scope.cancelled_caught
    assert not finished
    assert rec.trace() == [
        "start trigger",
        "done trigger success",
        "start wait",
        "done wait cancelled",
        "skip after",
    ]
    assert rec.log("after").error == NOT_STARTED
    log = rec.log("wait")
    assert (log.status, log.error, log.output, log.duration_ms) == (
        NodeStatus.CANCELLED,
        "cancelled",
        None,
        500,
    )
    assert log.input == {"trigger": {}}
    assert rec.time_of("done wait cancelled") == pytest.approx(0.5)


async def test_cancelling_mid_run_cancels_every_running_branch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    with trio.move_on_after(1.5) as scope:
        await execute(two_slow_branches(), {}, rec.append, LIMITS)
    assert scope.cancelled_caught
    # a finished at 1 s and released after_a; b was still waiting, so join never started
    assert rec.log("a").status is NodeStatus.SUCCESS
    assert rec.log("after_a").status is NodeStatus.SUCCESS
    assert rec.log("b").status is NodeStatus.CANCELLED
    assert "join" not in rec.started()
    assert [line for line, time in zip(rec.trace(), rec.times, strict=True) if time >= 1.5] == [
        "done b cancelled",
        "skip join",
    ]
    rec.assert_every_start_completed_once()


async def test_cancelling_before_any_node_started_starts_none_and_logs_each_as_skipped() -> None:
    g = graph([trigger(), transform("a", 1)], "trigger > a")
    rec = Recorder()
    finished = False
    with trio.CancelScope() as scope:
        scope.cancel()
        await execute(g, {}, rec.append, LIMITS)
        finished = True
    assert scope.cancelled_caught
    assert not finished
    assert rec.trace() == ["skip trigger", "skip a"]
    assert rec.log("a").error == NOT_STARTED


async def test_a_node_waiting_for_a_concurrency_slot_never_starts_once_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), delay("a", 1000), delay("b", 1000)], "trigger > a", "trigger > b")
    rec = Recorder()
    with trio.move_on_after(0.5) as scope:
        await execute(g, {}, rec.append, Limits(max_concurrent_nodes=1))
    assert scope.cancelled_caught
    assert len(rec.started()) == 2  # the trigger and whichever of a, b got the slot
    assert rec.trace()[-2].endswith(" cancelled")
    assert rec.skipped() == [({"a", "b"} - set(rec.started())).pop()]
    rec.assert_every_start_completed_once()


@pytest.fixture
def failing_attempts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Registers a `broken` node type that always errors; returns when each attempt began."""
    attempts: list[float] = []

    async def run(ctx: NodeContext) -> NodeResult:
        attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        raise NodeError("broken")

    monkeypatch.setitem(NODE_TYPES, "broken", NodeType("broken", {"type": "object"}, run))
    return attempts


async def test_cancelling_during_retry_backoff_does_not_retry_and_says_why_it_waited(
    autojump_clock: trio.testing.MockClock, failing_attempts: list[float]
) -> None:
    g = graph(
        [trigger(), node("b", "broken", retry={"maxAttempts": 3, "backoffMs": 200})], "trigger > b"
    )
    rec = Recorder()
    with trio.move_on_after(0.1) as scope:
        await execute(g, {}, rec.append, LIMITS)
    assert scope.cancelled_caught
    assert [time - rec.t0 for time in failing_attempts] == [0.0]
    log = rec.log("b")
    waiting = "cancelled while waiting to try again; attempt 1 had failed: broken"
    assert (log.status, log.error, log.duration_ms) == (NodeStatus.CANCELLED, waiting, 100)


async def test_a_node_cancelled_while_retrying_logs_the_attempts_it_made(
    autojump_clock: trio.testing.MockClock, failing_attempts: list[float]
) -> None:
    g = graph(
        [trigger(), node("b", "broken", retry={"maxAttempts": 3, "backoffMs": 200})], "trigger > b"
    )
    rec = Recorder()
    with trio.move_on_after(0.3):  # attempts began at 0 and 0.2; the third would be at 0.6
        await execute(g, {}, rec.append, LIMITS)
    assert len(failing_attempts) == 2
    assert rec.log("b").status is NodeStatus.CANCELLED
    assert rec.log("b").attempt == 2


async def test_the_run_timeout_fails_the_run_and_cancels_the_running_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), delay("wait", 5000), transform("after", 1)], "trigger > wait > after")
    rec = Recorder()
    with pytest.raises(RunFailed) as caught:
        await execute(g, {}, rec.append, Limits(run_timeout_s=1))
    assert str(caught.value) == "the run timed out after 1 s"
    assert rec.elapsed() == pytest.approx(1.0)
    assert rec.trace() == [
        "start trigger",
        "done trigger success",
        "start wait",
        "done wait cancelled",
        "skip after",
    ]
    assert rec.log("wait").duration_ms == 1000


async def test_the_run_timeout_counts_from_the_start_of_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("a", 600), delay("b", 600), transform("c", 1)], "trigger > a > b > c"
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match="timed out after 1 s"):
        await execute(g, {}, rec.append, Limits(run_timeout_s=1))
    assert rec.log("a").status is NodeStatus.SUCCESS
    assert rec.log("b").status is NodeStatus.CANCELLED
    assert rec.log("b").duration_ms == 400
    assert "c" not in rec.started()


async def test_a_run_that_finishes_within_its_timeout_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), delay("wait", 999)], "trigger > wait")
    assert await execute(g, {}, Recorder().append, Limits(run_timeout_s=1)) == {"waitedMs": 999}


async def _complete(g: Graph, rec: Recorder) -> None:
    await execute(g, {}, rec.append, LIMITS)


async def _fail_b(g: Graph, rec: Recorder) -> None:
    with pytest.raises(RunFailed):
        await execute(g, {}, rec.append, LIMITS)


async def _time_out(g: Graph, rec: Recorder) -> None:
    with pytest.raises(RunFailed):
        await execute(g, {}, rec.append, Limits(run_timeout_s=1.5))


async def _cancel(g: Graph, rec: Recorder) -> None:
    with trio.move_on_after(1.5):
        await execute(g, {}, rec.append, LIMITS)


@pytest.mark.parametrize(
    ("way", "b_status"),
    [
        (_complete, NodeStatus.SUCCESS),
        (_fail_b, NodeStatus.ERROR),
        (_time_out, NodeStatus.CANCELLED),
        (_cancel, NodeStatus.CANCELLED),
    ],
    ids=["completes", "node-fails", "run-times-out", "caller-cancels"],
)
async def test_every_started_node_completes_exactly_once(
    autojump_clock: trio.testing.MockClock,
    way: Callable[[Graph, Recorder], Awaitable[None]],
    b_status: NodeStatus,
) -> None:
    b = (
        delay("b", 2000, timeoutMs=1200)
        if way is _fail_b  # b errors at 1.2 s
        else delay("b", 2000)
    )
    g = graph(
        [trigger(), delay("a", 1000), b, transform("after_a", 1), transform("join", 2)],
        "trigger > a > after_a",
        "a > join",
        "trigger > b > join",
    )
    rec = Recorder()
    await way(g, rec)
    rec.assert_every_start_completed_once()
    assert rec.log("b").status is b_status
    assert ("join" in rec.started()) is (b_status is NodeStatus.SUCCESS)


async def test_no_node_starts_after_the_run_failed_with_max_concurrent_nodes_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [
            trigger(),
            delay("stuck", 1000, timeoutMs=500),  # errors at 0.5 s: the run fails
            delay("brief", 100),
            transform("after_brief", 1),
        ],
        "trigger > stuck",
        "trigger > brief > after_brief",
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match="timed out after 500 ms"):
        await execute(g, {}, rec.append, Limits(max_concurrent_nodes=1))
    failed_at = rec.trace().index("done stuck error")
    assert [line for line in rec.trace()[failed_at:] if line.startswith("start ")] == []


async def test_a_failed_run_starts_no_node_afterwards_with_free_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("short", 100), fail("stop", "stop"), delay("long", 1000)],
        "trigger > short > stop",
        "trigger > long",
    )
    rec = Recorder()
    with pytest.raises(RunFailed):
        await execute(g, {}, rec.append, LIMITS)
    failed_at = rec.trace().index("done stop error")
    assert [line for line in rec.trace()[failed_at:] if line.startswith("start ")] == []
    assert rec.log("long").status is NodeStatus.CANCELLED


async def test_a_node_let_go_in_the_step_that_stops_the_run_never_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Nodes wait in `ready` while the store cannot take their events; the store comes back
    and a Stop arrives in the same step: the waiting nodes stay unstarted (skipped)."""
    g = graph(
        [trigger(), delay("slow", 10_000), transform("next", 1)],
        "trigger > slow",
        "trigger > next",
    )
    rec = Recorder()
    store_answers, store_back, parked = True, trio.Event(), trio.Event()

    def emit(event: NodeEvent) -> None:
        nonlocal store_answers
        rec.append(event)
        store_answers = False  # after the trigger's first event: the next nodes wait

    async def ready() -> None:
        while not store_answers:
            parked.set()
            await store_back.wait()

    stop = trio.CancelScope()
    async with trio.open_nursery() as nursery:

        async def the_run() -> None:
            with stop:
                await execute(g, {}, emit, LIMITS, ready)

        nursery.start_soon(the_run)
        await parked.wait()
        store_answers = True
        store_back.set()
        stop.cancel()
    assert rec.started() == ["trigger"]
    assert sorted(rec.skipped()) == ["next", "slow"]
