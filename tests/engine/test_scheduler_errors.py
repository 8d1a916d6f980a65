"""The scheduler when nodes error: onError, fail nodes, missing paths, retries with backoff and
per-attempt timeouts. Time is virtual (autojump_clock)."""

from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from flowtrux.engine.errors import NodeError
from flowtrux.engine.nodes import NODE_TYPES, NodeContext, NodeResult, NodeType
from flowtrux.engine.scheduler import Limits, RunFailed, execute
from flowtrux.engine.states import NodeStatus
from tests.engine.builders import (
    Recorder,
    condition,
    delay,
    fail,
    graph,
    node,
    transform,
    trigger,
)

LIMITS = Limits()
RETRY = {"maxAttempts": 3, "backoffMs": 200}


@pytest.fixture
def flaky_attempts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Registers a `flaky` node type that fails its first `config.failures` attempts; returns the
    (virtual) time at which each attempt began."""
    attempts: list[float] = []

    async def run(ctx: NodeContext) -> NodeResult:
        attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if len(attempts) <= ctx.config["failures"]:
            raise NodeError(f"attempt {len(attempts)} failed")
        return NodeResult({"succeededOnAttempt": len(attempts)})

    monkeypatch.setitem(NODE_TYPES, "flaky", NodeType("flaky", {"type": "object"}, run))
    return attempts


def since(start: float, times: list[float]) -> list[float]:
    return [time - start for time in times]


async def test_on_error_continue_logs_the_error_and_the_run_goes_on() -> None:
    g = graph(
        [
            trigger(),
            fail("check", "ticket {{trigger.data.id}} is closed", onError="continue"),
            transform("after", {"saw": "{{check.output.error}}"}),
        ],
        "trigger > check > after",
    )
    rec = Recorder()
    output = await execute(g, {"id": 7}, rec.append, LIMITS)
    log = rec.log("check")
    assert log.status is NodeStatus.ERROR
    assert log.error == "ticket 7 is closed"
    assert log.output == {"error": "ticket 7 is closed"}
    assert log.input == {"trigger": {"id": 7}}
    assert rec.log("after").input == {"check": {"error": "ticket 7 is closed"}}
    assert output == {"saw": "ticket 7 is closed"}
    assert rec.trace()[-1] == "done after success"


async def test_on_error_fail_ends_the_run_cancels_running_nodes_and_starts_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [
            trigger(),
            delay("short", 100),
            node("stop", "fail", {"message": "stop at {{short.output.waitedMs}} ms"}, name="Stop!"),
            transform("after_stop", 1),
            delay("long", 1000),
            transform("after_long", 2),
        ],
        "trigger > short > stop > after_stop",
        "trigger > long > after_long",
    )
    rec = Recorder()
    with pytest.raises(RunFailed) as caught:
        await execute(g, {}, rec.append, LIMITS)
    assert str(caught.value) == "node 'Stop!' (stop) failed: stop at 100 ms"
    assert rec.elapsed() == pytest.approx(0.1)
    assert rec.log("stop").status is NodeStatus.ERROR
    assert rec.log("stop").output is None
    long_log = rec.log("long")
    assert (long_log.status, long_log.error, long_log.output) == (
        NodeStatus.CANCELLED,
        "cancelled",
        None,
    )
    assert long_log.duration_ms == 100
    assert sorted(rec.started()) == ["long", "short", "stop", "trigger"]
    assert rec.skipped() == ["after_stop", "after_long"]  # each with a log: the run ended first
    assert rec.trace()[-4:-2] in (
        ["done stop error", "done long cancelled"],
        ["done long cancelled", "done stop error"],
    )
    rec.assert_every_start_completed_once()


async def test_a_fail_node_on_a_branch_not_taken_does_not_fail_the_run() -> None:
    g = graph(
        [trigger(), condition("ok", "trigger.data.ok"), fail("boom", "nope"), transform("y", 1)],
        "trigger > ok >false> boom",
        "ok >true> y",
    )
    rec = Recorder()
    assert await execute(g, {"ok": True}, rec.append, LIMITS) == 1
    assert rec.skipped() == ["boom"]


async def test_a_template_reading_a_missing_path_errors_the_node_naming_the_path() -> None:
    g = graph(
        [trigger(), transform("shape", {"x": "{{trigger.data.user.name}}"})], "trigger > shape"
    )
    rec = Recorder()
    with pytest.raises(RunFailed) as caught:
        await execute(g, {"user": {"id": 1}}, rec.append, LIMITS)
    message = "missing value at path 'trigger.data.user.name' (no key 'name' in trigger.data.user)"
    assert rec.log("shape").error == message
    assert str(caught.value) == f"node 'Make shape' (shape) failed: {message}"


async def test_reading_the_output_of_a_skipped_node_is_a_missing_path() -> None:
    g = graph(
        [
            trigger(),
            condition("check", "trigger.data.go"),
            transform("yes", {"v": 1}),
            transform("no", {"v": 2}),
            transform("join", "{{yes.output.v}}", onError="continue"),
        ],
        "trigger > check >true> yes > join",
        "check >false> no > join",
    )
    rec = Recorder()
    output = await execute(g, {"go": False}, rec.append, LIMITS)
    error = "missing value at path 'yes.output.v' (no key 'yes' in the scope)"
    assert rec.log("join").error == error
    assert output == {"error": error}


async def test_a_condition_that_errors_under_continue_lets_nothing_after_it_run() -> None:
    g = graph(
        [
            trigger(),
            condition("check", "trigger.data.n < 3", onError="continue"),
            transform("yes", 1),
            transform("no", 2),
            transform("always", 3),
            transform("side", 4),
        ],
        "trigger > check >true> yes",
        "check >false> no",
        "check > always",
        "trigger > side",
    )
    rec = Recorder()
    assert await execute(g, {"n": "many"}, rec.append, LIMITS) == 4
    assert rec.log("check").status is NodeStatus.ERROR
    assert sorted(rec.skipped()) == ["always", "no", "yes"]


async def test_a_condition_that_errors_under_fail_fails_the_run() -> None:
    g = graph(
        [trigger(), condition("check", "trigger.data.n < 3"), transform("yes", 1)],
        "trigger > check >true> yes",
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match="cannot compare string 'many' with number 3"):
        await execute(g, {"n": "many"}, rec.append, LIMITS)
    assert rec.log("check").status is NodeStatus.ERROR
    assert rec.skipped() == ["yes"]


async def test_retry_waits_with_exponential_backoff_then_fails_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), fail("boom", "still broken", retry=RETRY)], "trigger > boom")
    rec = Recorder()
    with pytest.raises(RunFailed, match=r"^node 'Fail boom' \(boom\) failed: still broken$"):
        await execute(g, {}, rec.append, LIMITS)
    log = rec.log("boom")
    assert (log.status, log.attempt, log.error) == (NodeStatus.ERROR, 3, "still broken")
    assert log.duration_ms == 600  # attempts at 0, 0.2 and 0.6 s
    assert rec.elapsed() == pytest.approx(0.6)
    assert rec.trace() == ["start trigger", "done trigger success", "start boom", "done boom error"]


async def test_retry_attempts_begin_at_0_200_and_600_ms(
    autojump_clock: trio.testing.MockClock, flaky_attempts: list[float]
) -> None:
    g = graph(
        [trigger(), node("f", "flaky", {"failures": 5}, retry=RETRY, onError="continue")],
        "trigger > f",
    )
    rec = Recorder()
    output = await execute(g, {}, rec.append, LIMITS)
    assert since(rec.t0, flaky_attempts) == pytest.approx([0.0, 0.2, 0.6])
    assert output == {"error": "attempt 3 failed"}  # the last attempt's error
    assert rec.log("f").attempt == 3


async def test_retry_stops_at_the_first_success(
    autojump_clock: trio.testing.MockClock, flaky_attempts: list[float]
) -> None:
    g = graph([trigger(), node("f", "flaky", {"failures": 1}, retry=RETRY)], "trigger > f")
    rec = Recorder()
    output = await execute(g, {}, rec.append, LIMITS)
    assert since(rec.t0, flaky_attempts) == pytest.approx([0.0, 0.2])
    log = rec.log("f")
    assert (log.status, log.attempt, log.error) == (NodeStatus.SUCCESS, 2, None)
    assert output == {"succeededOnAttempt": 2}


async def test_no_retry_after_a_first_success(autojump_clock: trio.testing.MockClock) -> None:
    g = graph([trigger(), transform("t", "fine", retry=RETRY)], "trigger > t")
    rec = Recorder()
    assert await execute(g, {}, rec.append, LIMITS) == "fine"
    assert rec.log("t").attempt == 1
    assert rec.elapsed() == 0


async def test_timeout_ms_errors_an_attempt_that_takes_too_long(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("slow", 5000, timeoutMs=100, onError="continue"), transform("next", 1)],
        "trigger > slow > next",
    )
    rec = Recorder()
    assert await execute(g, {}, rec.append, LIMITS) == 1
    log = rec.log("slow")
    assert (log.status, log.error, log.output) == (
        NodeStatus.ERROR,
        "timed out after 100 ms",
        {"error": "timed out after 100 ms"},
    )
    assert log.duration_ms == 100
    assert rec.time_of("start next") == pytest.approx(0.1)


async def test_timeout_ms_applies_to_each_attempt(autojump_clock: trio.testing.MockClock) -> None:
    g = graph(
        [
            trigger(),
            delay("slow", 5000, timeoutMs=100, retry={"maxAttempts": 3, "backoffMs": 50}),
        ],
        "trigger > slow",
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match=r"timed out after 100 ms$"):
        await execute(g, {}, rec.append, LIMITS)
    # 0.1 attempt + 0.05 wait + 0.1 attempt + 0.1 wait + 0.1 attempt
    assert rec.elapsed() == pytest.approx(0.45)
    assert rec.log("slow").attempt == 3


async def test_a_delay_shorter_than_its_timeout_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph([trigger(), delay("quick", "{{trigger.data.ms}}", timeoutMs=100)], "trigger > quick")
    rec = Recorder()
    assert await execute(g, {"ms": 99}, rec.append, LIMITS) == {"waitedMs": 99}
    assert rec.elapsed() == pytest.approx(0.099)


@pytest.mark.parametrize(
    ("ms", "error"),
    [
        ("soon", "delay 'ms' must be a number of milliseconds >= 0, got 'soon'"),
        (-1, "delay 'ms' must be a number of milliseconds >= 0, got -1"),
        (True, "delay 'ms' must be a number of milliseconds >= 0, got True"),
    ],
)
async def test_a_delay_whose_template_renders_no_duration_errors(ms: Any, error: str) -> None:
    g = graph(
        [trigger(), delay("wait", "{{trigger.data.ms}}", onError="continue")], "trigger > wait"
    )
    body: Mapping[str, Any] = {"ms": ms}
    assert await execute(g, body, Recorder().append, LIMITS) == {"error": error}
