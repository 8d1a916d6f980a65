"""Graph.from_json: defaults of node settings, branch edges, the indexes the scheduler walks."""

from collections.abc import Mapping
from typing import Any

import pytest

from flowtrux.engine.graph import Edge, Graph, Node, RetryPolicy
from tests.engine.builders import condition, links, transform, trigger


@pytest.mark.parametrize(
    ("backoff_ms", "waits"),
    [(200, [0.2, 0.4, 0.8, 1.6]), (0, [0.0, 0.0, 0.0, 0.0]), (1500, [1.5, 3.0, 6.0, 12.0])],
)
def test_backoff_doubles_after_each_failed_attempt(backoff_ms: int, waits: list[float]) -> None:
    policy = RetryPolicy(max_attempts=5, backoff_ms=backoff_ms)
    assert [policy.backoff_s(attempt) for attempt in (1, 2, 3, 4)] == pytest.approx(waits)


def test_node_settings_default_to_one_attempt_no_timeout_and_fail() -> None:
    node = Node.from_json({"id": "a", "type": "transform", "config": {"output": 1}})
    assert node == Node("a", "transform", "a", {"output": 1}, None, RetryPolicy(1, 0), "fail")


def test_node_settings_are_read_from_json() -> None:
    doc = transform(
        "a", 1, name="Shape", timeoutMs=250, retry={"maxAttempts": 3}, onError="continue"
    )
    node = Node.from_json(doc)
    assert (node.name, node.timeout_ms, node.on_error) == ("Shape", 250, "continue")
    assert node.retry == RetryPolicy(max_attempts=3, backoff_ms=0)


def test_branch_edges() -> None:
    edges = [Edge.from_json(edge) for edge in links("c >true> a", "c >false> b", "a > b")]
    assert edges == [Edge("c", "a", True), Edge("c", "b", False), Edge("a", "b", None)]


def test_graph_indexes() -> None:
    nodes: list[Mapping[str, Any]] = [
        transform("a", 1),
        trigger(),
        condition("c", "a.output == 1"),
        transform("b", 2),
    ]
    edges: list[Mapping[str, Any]] = [*links("trigger > a > c >true> b", "trigger > b")]
    graph = Graph.from_json(nodes, edges)
    assert graph.trigger.id == "trigger"
    assert set(graph.by_id) == {"trigger", "a", "c", "b"}
    assert graph.outgoing["trigger"] == (Edge("trigger", "a"), Edge("trigger", "b"))
    assert graph.incoming["b"] == (Edge("c", "b", True), Edge("trigger", "b"))
    assert graph.incoming["trigger"] == ()
    assert graph.outgoing["b"] == ()
