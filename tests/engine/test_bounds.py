"""What one node may hold and cost: its input, its output and what its log tells are bounded by
the output limit, its error is a readable length, and a condition's work is bounded."""

import pytest

from flowtrux.engine.conditions import evaluate, parse_condition
from flowtrux.engine.conditions.evaluate import MAX_STEPS
from flowtrux.engine.errors import ConditionError
from flowtrux.engine.scheduler import MAX_ERROR_CHARS, Limits, RunFailed, execute
from flowtrux.engine.states import NodeStatus
from tests.engine.builders import (
    Recorder,
    condition,
    fail,
    graph,
    node,
    transform,
    trigger,
)

SMALL = Limits(max_output_bytes=10_000)
PIECE = "x" * 4_000  # 4,002 bytes of JSON: two fit the limit, three do not


async def test_a_node_whose_input_is_over_the_limit_errors_without_running_or_logging_it() -> None:
    g = graph(
        [
            trigger(),
            *(transform(f"part-{n}", PIECE) for n in range(3)),
            transform("join", "ran"),
        ],
        *(f"trigger > part-{n} > join" for n in range(3)),
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match=r"its input .* is larger than 10,000 bytes of JSON"):
        await execute(g, {}, rec.append, SMALL)
    log = rec.log("join")
    assert (log.status, log.input, log.output, log.attempt) == (NodeStatus.ERROR, None, None, 0)


async def test_what_a_log_tells_is_bounded_like_the_output() -> None:
    g = graph(
        [
            trigger(staticData={"a": PIECE, "b": PIECE}),  # 8 KB: within the limit
            # Reads a, b and the whole of trigger.data: 16 KB of variables.
            condition("check", "trigger.data.a != trigger.data.b or trigger.data == 'x'"),
        ],
        "trigger > check",
    )
    rec = Recorder()
    with pytest.raises(RunFailed, match="what its log tells of it is larger than 10,000 bytes"):
        await execute(g, {}, rec.append, SMALL)
    assert rec.log("check").debug == {}


async def test_a_long_error_is_shortened_saying_how_long_it_was() -> None:
    g = graph(
        [trigger(staticData={"s": "y" * 5_000}), fail("stop", "{{trigger.data.s}}")],
        "trigger > stop",
    )
    rec = Recorder()
    with pytest.raises(RunFailed):
        await execute(g, {}, rec.append, Limits())
    error = rec.log("stop").error
    assert error is not None
    assert len(error) <= MAX_ERROR_CHARS
    assert error.endswith("… (5,000 characters in all)")


async def test_whole_numbers_written_with_a_point_are_whole_numbers() -> None:
    g = graph(
        [
            trigger(),
            node("f", "transform", {"output": 1}, retry={"maxAttempts": 2.0}, timeoutMs=1000.0),
        ],
        "trigger > f",
    )
    rec = Recorder()
    assert await execute(g, {}, rec.append, Limits()) == 1
    assert rec.log("f").status is NodeStatus.SUCCESS


def test_a_condition_that_compares_too_much_errors_instead_of_holding_the_loop() -> None:
    values = {"a": list(range(MAX_STEPS)), "b": list(range(MAX_STEPS))}
    scope = {"trigger": {"data": values}}
    with pytest.raises(ConditionError, match="compares more than 20,000 values"):
        evaluate(parse_condition("trigger.data.a == trigger.data.b"), scope)
    smaller = {"trigger": {"data": {"a": values["a"][:1000], "b": values["b"][:1000]}}}
    assert evaluate(parse_condition("trigger.data.a == trigger.data.b"), smaller).result


def test_a_value_read_twice_is_equal_to_itself_at_no_cost() -> None:
    scope = {"trigger": {"data": {"a": list(range(MAX_STEPS * 2))}}}
    text = " and ".join(["trigger.data.a == trigger.data.a"] * 100)
    assert evaluate(parse_condition(text), scope).result


async def test_a_run_whose_logs_pass_their_limit_fails_at_the_node_that_passes_it() -> None:
    # Each log holds its input (the output before it) and its output: 4 KB for copy-0, then
    # 8 KB each: 4, 12, 20, then 28 KB at copy-3.
    chain_of = [trigger(), *(transform(f"copy-{n}", PIECE) for n in range(10))]
    g = graph(chain_of, " > ".join(node["id"] for node in chain_of))
    rec = Recorder()
    limits = Limits(max_output_bytes=10_000, max_run_log_bytes=25_000)
    with pytest.raises(RunFailed, match="the run's logs are larger than 25,000 bytes of JSON"):
        await execute(g, {}, rec.append, limits)
    statuses = [rec.log(f"copy-{n}").status for n in range(10)]
    assert statuses[:3] == [NodeStatus.SUCCESS] * 3
    assert statuses[3] is NodeStatus.ERROR
    assert set(statuses[4:]) == {NodeStatus.SKIPPED}
