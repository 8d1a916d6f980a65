"""The limits of workflow.md's "Limits" on a workflow document: a node count (configurable), a
condition's size, and numbers within what the engine can use; each a problem naming the limit."""

from collections.abc import Mapping
from typing import Any

import pytest

from flowtrux.engine.limits import MAX_CONDITION_BYTES, MAX_MS, MAX_WORKFLOW_NODES
from flowtrux.engine.scheduler import Limits, execute
from flowtrux.engine.validation import Problem, validate_workflow
from tests.engine.builders import Recorder, big_chain, condition, delay, graph, transform, trigger
from tests.engine.builders import workflow as document


def chain_of(length: int) -> dict[str, Any]:
    """trigger -> `length` - 1 transforms."""
    nodes, links = big_chain("t", length - 1)
    return document([trigger(), *nodes], f"trigger > {links}")


def test_a_workflow_may_have_as_many_nodes_as_the_limit() -> None:
    assert validate_workflow(chain_of(MAX_WORKFLOW_NODES)) == []


def test_one_node_more_is_the_only_problem_reported() -> None:
    doc = chain_of(MAX_WORKFLOW_NODES + 1)
    doc["nodes"][1]["type"] = "teleport"  # not even looked at

    assert validate_workflow(doc) == [
        Problem("nodes", "a workflow has at most 5000 nodes, this one has 5001")
    ]


def test_the_node_limit_is_given_by_the_caller() -> None:
    assert validate_workflow(chain_of(3), max_nodes=3) == []
    assert validate_workflow(chain_of(4), max_nodes=3) == [
        Problem("nodes", "a workflow has at most 3 nodes, this one has 4")
    ]


def test_a_chain_of_the_most_nodes_reading_far_and_near_upstream_is_valid() -> None:
    """Each node reads the first transform and its predecessor: both upstream. (How long it
    takes is measured by bench.workflow_create, not asserted here.)"""
    nodes = [trigger(), transform("t1", 1)]
    for i in range(2, MAX_WORKFLOW_NODES):
        reads = {"first": "{{t1.output}}", "previous": f"{{{{t{i - 1}.output}}}}"}
        nodes.append(transform(f"t{i}", reads))
    chain = " > ".join(node["id"] for node in nodes)
    assert validate_workflow(document(nodes, chain)) == []


def test_a_long_chain_reading_a_later_node_names_it() -> None:
    nodes, links = big_chain("t", 3000)
    nodes[10] = transform("t10", "{{t2999.output}}")
    assert validate_workflow(document([trigger(), *nodes], f"trigger > {links}")) == [
        Problem(
            "nodes[11].config",
            "'t2999.output' reads node 't2999', which is not upstream of this node",
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        "trigger.data.x == '" + "a" * (MAX_CONDITION_BYTES - 20) + "'",
        "trigger.data.x == '" + "é" * ((MAX_CONDITION_BYTES - 20) // 2) + "'",
    ],
    ids=["ascii", "two-byte"],
)
def test_a_condition_up_to_4_kib_is_fine(text: str) -> None:
    assert len(text.encode()) == MAX_CONDITION_BYTES
    assert validate_workflow(document([trigger(), condition("c", text)], "trigger > c")) == []


def test_a_condition_over_4_kib_of_utf8_is_a_problem() -> None:
    text = "trigger.data.x == '" + "é" * 2039 + "'"  # 2,059 characters, 4,098 bytes
    doc = document([trigger(), condition("c", text)], "trigger > c")

    assert validate_workflow(doc) == [
        Problem("nodes[1].config", "condition is 4098 bytes long (UTF-8), over the limit of 4096")
    ]


@pytest.mark.parametrize(
    ("bad_node", "path", "maximum"),
    [
        pytest.param(delay("d", 10**400), "nodes[1].config.ms", MAX_MS, id="ms-10**400"),
        pytest.param(delay("d", 1e300), "nodes[1].config.ms", MAX_MS, id="ms-1e300"),
        pytest.param(delay("d", MAX_MS + 1), "nodes[1].config.ms", MAX_MS, id="ms-over-a-day"),
        pytest.param(
            transform("t", 1, timeoutMs=10**400), "nodes[1].timeoutMs", MAX_MS, id="timeout-10**400"
        ),
        pytest.param(
            transform("t", 1, timeoutMs=MAX_MS + 1),
            "nodes[1].timeoutMs",
            MAX_MS,
            id="timeout-over-a-day",
        ),
        pytest.param(
            transform("t", 1, retry={"backoffMs": 10**400}),
            "nodes[1].retry.backoffMs",
            600_000,
            id="backoff-10**400",
        ),
        pytest.param(
            transform("t", 1, retry={"maxAttempts": 10**400}),
            "nodes[1].retry.maxAttempts",
            10,
            id="attempts-10**400",
        ),
    ],
)
def test_numbers_past_what_the_engine_can_use_name_the_field_and_its_maximum(
    bad_node: dict[str, Any], path: str, maximum: int
) -> None:
    doc = document([trigger(), bad_node], f"trigger > {bad_node['id']}")
    [problem] = validate_workflow(doc)
    assert problem.path == path
    assert problem.message.endswith(f"is greater than the maximum of {maximum}")


@pytest.mark.parametrize("ms", [MAX_MS, 0])
def test_a_day_is_the_longest_delay_and_timeout(ms: int) -> None:
    doc = document([trigger(), delay("d", ms, timeoutMs=max(ms, 1))], "trigger > d")
    assert validate_workflow(doc) == []


async def test_a_delay_whose_template_renders_more_than_a_day_errors_naming_the_maximum() -> None:
    g = graph(
        [trigger(), delay("wait", "{{trigger.data.ms}}", onError="continue")], "trigger > wait"
    )
    body: Mapping[str, Any] = {"ms": 10**400}

    assert await execute(g, body, Recorder().append, Limits()) == {
        "error": f"delay 'ms' must be at most 86400000 (a day), got {10**400}"
    }
