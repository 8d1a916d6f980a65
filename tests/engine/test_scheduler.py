"""The scheduler on runs that succeed: event order, inputs, templates, output, concurrency and
dead-path skipping. Time is virtual (autojump_clock) wherever a node waits."""

import pytest
import trio
import trio.testing

from flowtrux.engine.graph import Graph
from flowtrux.engine.scheduler import Limits, execute
from flowtrux.engine.states import NodeStatus
from tests.engine.builders import (
    Recorder,
    big_chain,
    condition,
    delay,
    graph,
    response,
    transform,
    trigger,
)

LIMITS = Limits()


async def test_a_chain_reports_each_node_start_then_complete_in_order() -> None:
    g = graph(
        [
            trigger(staticData={"source": "web", "tier": "free"}),
            transform("a", {"who": "{{trigger.data.name}}"}),
            transform("b", {"greeting": "Hello {{a.output.who}}"}),
        ],
        "trigger > a > b",
    )
    rec = Recorder()
    output = await execute(g, {"name": "Ada", "tier": "pro"}, rec.append, LIMITS)
    assert rec.trace() == [
        "start trigger",
        "done trigger success",
        "start a",
        "done a success",
        "start b",
        "done b success",
    ]
    assert output == {"greeting": "Hello Ada"}


async def test_trigger_output_is_static_data_merged_with_body_and_body_wins() -> None:
    g = graph(
        [trigger(staticData={"source": "web", "tier": "free"}), transform("a", 1)],
        "trigger > a",
    )
    rec = Recorder()
    await execute(g, {"tier": "pro", "text": "help"}, rec.append, LIMITS)
    log = rec.log("trigger")
    assert log.status is NodeStatus.SUCCESS
    assert log.output == {"source": "web", "tier": "pro", "text": "help"}
    assert log.input == {
        "body": {"tier": "pro", "text": "help"},
        "staticData": {"source": "web", "tier": "free"},
    }
    assert (log.node_name, log.node_type, log.error, log.attempt) == ("Start", "trigger", None, 1)


async def test_a_trigger_without_static_data_outputs_the_body() -> None:
    g = graph([trigger(), transform("a", "{{trigger.data}}")], "trigger > a")
    rec = Recorder()
    assert await execute(g, {"x": [1, 2]}, rec.append, LIMITS) == {"x": [1, 2]}
    assert rec.log("trigger").input == {"body": {"x": [1, 2]}, "staticData": {}}


async def test_a_node_input_is_the_output_of_each_live_predecessor() -> None:
    g = graph(
        [
            trigger(),
            transform("a", {"from": "a"}),
            transform("b", ["from b"]),
            transform("join", "{{a.output.from}}+{{b.output.0}}"),
        ],
        "trigger > a > join",
        "trigger > b > join",
    )
    rec = Recorder()
    output = await execute(g, {"k": 1}, rec.append, LIMITS)
    assert rec.log("a").input == {"trigger": {"k": 1}}
    assert rec.log("join").input == {"a": {"from": "a"}, "b": ["from b"]}
    assert output == "a+from b"


async def test_templates_keep_the_type_of_a_whole_string_and_render_text_otherwise() -> None:
    g = graph(
        [
            trigger(),
            transform("first", {"items": ["{{trigger.data.items.1}}"]}),
            transform(
                "shape",
                {
                    "count": "{{trigger.data.count}}",
                    "flag": "{{ trigger.data.flag }}",
                    "nothing": "{{trigger.data.nothing}}",
                    "obj": "{{trigger.data.obj}}",
                    "label": "n={{trigger.data.count}} ok={{trigger.data.flag}}",
                    "objText": "obj: {{trigger.data.obj}}",
                    "fromNode": "{{first.output.items.0}}",
                    "keys {{trigger.data.count}}": "keys are not rendered",
                    "untouched": 7,
                },
            ),
        ],
        "trigger > first > shape",
    )
    body = {"count": 3, "flag": True, "nothing": None, "obj": {"a": [1, "x"]}, "items": ["p", "q"]}
    output = await execute(g, body, Recorder().append, LIMITS)
    assert output == {
        "count": 3,
        "flag": True,
        "nothing": None,
        "obj": {"a": [1, "x"]},
        "label": "n=3 ok=true",
        "objText": 'obj: {"a":[1,"x"]}',
        "fromNode": "q",
        "keys {{trigger.data.count}}": "keys are not rendered",
        "untouched": 7,
    }


async def test_the_run_output_is_the_response_node_output_even_if_others_finish_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [
            trigger(),
            response("reply", {"accepted": "{{trigger.data.id}}"}),
            delay("slow", 500),
            transform("late", "finished last"),
        ],
        "trigger > reply",
        "trigger > slow > late",
    )
    rec = Recorder()
    assert await execute(g, {"id": 42}, rec.append, LIMITS) == {"accepted": 42}
    assert rec.trace()[-1] == "done late success"  # late did run, after the response
    assert rec.elapsed() == pytest.approx(0.5)


@pytest.mark.parametrize(("first_ms", "second_ms"), [(100, 300), (300, 100)])
async def test_without_response_the_outputs_of_the_sinks_are_keyed_by_node_id_whatever_the_timing(
    autojump_clock: trio.testing.MockClock, first_ms: int, second_ms: int
) -> None:
    g = graph(
        [trigger(), delay("first", first_ms), delay("second", second_ms)],
        "trigger > first",
        "trigger > second",
    )
    output = await execute(g, {}, Recorder().append, LIMITS)
    assert output == {"first": {"waitedMs": first_ms}, "second": {"waitedMs": second_ms}}


async def test_when_one_sink_ran_its_output_is_the_run_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [
            trigger(),
            condition("check", "trigger.data.go == true"),
            transform("yes", "went"),
            transform("no", "stayed"),
            delay("side", 500),
            transform("after-side", "side done"),
            transform("join", "{{after-side.output}}"),
        ],
        "trigger > check",
        "trigger > side > after-side > join",
        "check >true> yes",
        "check >false> no",
    )
    # yes, no and join are sinks; one of yes/no is skipped, so two sinks ran.
    output = await execute(g, {"go": True}, Recorder().append, LIMITS)
    assert output == {"yes": "went", "join": "side done"}
    single = graph(
        [trigger(), condition("check", "trigger.data.go == true"), transform("yes", "went")],
        "trigger > check",
        "check >true> yes",
    )
    assert await execute(single, {"go": True}, Recorder().append, LIMITS) == "went"
    assert await execute(single, {"go": False}, Recorder().append, LIMITS) == {}


async def test_the_first_response_in_the_document_that_ran_is_the_run_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [
            trigger(),
            delay("slow", 300),
            response("late", "from late"),
            response("early", "from early"),
        ],
        "trigger > slow > late",
        "trigger > early",
    )
    assert await execute(g, {}, Recorder().append, LIMITS) == "from late"


async def test_independent_branches_run_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("a", 1000), delay("b", 1000), transform("join", "both")],
        "trigger > a > join",
        "trigger > b > join",
    )
    rec = Recorder()
    assert await execute(g, {}, rec.append, LIMITS) == "both"
    assert rec.time_of("start a") == rec.time_of("start b") == 0
    assert rec.time_of("done a success") == pytest.approx(1.0)
    assert rec.time_of("done b success") == pytest.approx(1.0)
    assert rec.time_of("start join") == pytest.approx(1.0)
    assert rec.elapsed() == pytest.approx(1.0)
    assert rec.log("a").duration_ms == rec.log("b").duration_ms == 1000


async def test_max_concurrent_nodes_one_serialises_branches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("a", 1000), delay("b", 1000)],
        "trigger > a",
        "trigger > b",
    )
    rec = Recorder()
    await execute(g, {}, rec.append, Limits(max_concurrent_nodes=1))
    assert sorted([rec.time_of("start a"), rec.time_of("start b")]) == pytest.approx([0, 1])
    assert rec.elapsed() == pytest.approx(2.0)
    assert rec.log("a").duration_ms == rec.log("b").duration_ms == 1000  # queueing not counted


async def test_max_concurrent_nodes_two_runs_three_branches_in_two_rounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = graph(
        [trigger(), delay("a", 1000), delay("b", 1000), delay("c", 1000)],
        "trigger > a",
        "trigger > b",
        "trigger > c",
    )
    rec = Recorder()
    await execute(g, {}, rec.append, Limits(max_concurrent_nodes=2))
    starts = sorted(rec.time_of(f"start {node_id}") for node_id in "abc")
    assert starts == pytest.approx([0, 0, 1])
    assert rec.elapsed() == pytest.approx(2.0)


def branching() -> Graph:
    """urgent? true: page > after_page; false: queue; page and queue both feed join."""
    return graph(
        [
            trigger(),
            condition("urgent", "trigger.data.n > 3"),
            transform("page", "paged"),
            transform("after_page", "{{page.output}} and more"),
            transform("queue", "queued"),
            response("join", {"joined": "{{trigger.data.n}}"}),
        ],
        "trigger > urgent >true> page > after_page",
        "urgent >false> queue > join",
        "page > join",
    )


async def test_the_branch_not_taken_is_skipped_and_never_started() -> None:
    rec = Recorder()
    output = await execute(branching(), {"n": 5}, rec.append, LIMITS)
    assert rec.skipped() == ["queue"]
    assert "queue" not in rec.started()
    log = rec.log("queue")
    assert (log.status, log.input, log.output, log.error) == (NodeStatus.SKIPPED, None, None, None)
    assert (log.node_name, log.node_type) == ("Make queue", "transform")
    assert rec.log("after_page").output == "paged and more"
    assert rec.log("join").input == {"page": "paged"}
    assert output == {"joined": 5}
    rec.assert_every_start_completed_once()


async def test_a_skipped_node_skips_what_only_it_feeds_and_a_join_with_a_live_input_runs() -> None:
    rec = Recorder()
    output = await execute(branching(), {"n": 1}, rec.append, LIMITS)
    assert rec.skipped() == ["page", "after_page"]
    assert rec.started() == ["trigger", "urgent", "queue", "join"]
    assert rec.trace().index("skip page") > rec.trace().index("done urgent success")
    assert rec.log("join").input == {"queue": "queued"}  # only the live predecessor
    assert rec.log("join").status is NodeStatus.SUCCESS
    assert output == {"joined": 1}
    rec.assert_every_start_completed_once()


@pytest.mark.parametrize(("n", "result"), [(5, True), (3, False)])
async def test_a_condition_log_carries_its_text_variables_and_boolean_output(
    n: int, result: bool
) -> None:
    text = "trigger.data.n > 3 and trigger.data.tier != 'free'"
    g = graph([trigger(), condition("check", text)], "trigger > check")
    rec = Recorder()
    output = await execute(g, {"n": n, "tier": "pro"}, rec.append, LIMITS)
    log = rec.log("check")
    assert log.output is result
    assert output is result
    variables = {"trigger.data.n": n} | ({"trigger.data.tier": "pro"} if result else {})
    assert log.debug == {"condition": text, "variables": variables}


async def test_a_condition_edge_without_branch_is_always_live() -> None:
    g = graph(
        [trigger(), condition("check", "false"), transform("always", "ran")],
        "trigger > check > always",
    )
    rec = Recorder()
    assert await execute(g, {}, rec.append, LIMITS) == "ran"
    assert rec.skipped() == []


async def test_a_thousand_node_chain_runs() -> None:
    nodes, chain = big_chain("n", 1000)
    g = graph([trigger(), *nodes], f"trigger > {chain}")
    rec = Recorder()
    assert await execute(g, {}, rec.append, LIMITS) == 999
    assert len(rec.started()) == 1001
    assert rec.started()[-1] == "n999"
    rec.assert_every_start_completed_once()


async def test_a_thousand_node_dead_branch_is_skipped() -> None:
    nodes, chain = big_chain("dead", 1000)
    g = graph(
        [trigger(), condition("check", "trigger.data.go"), transform("other", "done"), *nodes],
        "trigger > check >false> other",
        f"check >true> {chain}",
    )
    rec = Recorder()
    assert await execute(g, {"go": False}, rec.append, LIMITS) == "done"
    assert rec.skipped() == [f"dead{i}" for i in range(1000)]
    assert rec.started() == ["trigger", "check", "other"]
