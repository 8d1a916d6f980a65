"""The workflow graph: nodes, edges and the indexes the scheduler walks."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

OnError = Literal["fail", "continue"]


@attrs.frozen
class RetryPolicy:
    """Attempts of a node that errors; never used after cancellation."""

    max_attempts: int = 1
    backoff_ms: int = 0

    def backoff_s(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based): exponential."""
        return float(self.backoff_ms * 2 ** (failed_attempt - 1) / 1000)


@attrs.frozen
class Node:
    id: str
    type: str
    name: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    timeout_ms: int | None = None
    retry: RetryPolicy = RetryPolicy()
    on_error: OnError = "fail"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Node:
        """From a validated document, where an integer may be written `2.0` (JSON Schema's
        `integer` takes it)."""
        retry = doc.get("retry") or {}
        timeout_ms = doc.get("timeoutMs")
        return cls(
            id=doc["id"],
            type=doc["type"],
            name=doc.get("name") or doc["id"],
            config=doc.get("config") or {},
            timeout_ms=None if timeout_ms is None else int(timeout_ms),
            retry=RetryPolicy(int(retry.get("maxAttempts", 1)), int(retry.get("backoffMs", 0))),
            on_error=doc.get("onError", "fail"),
        )


@attrs.frozen
class Edge:
    source: str
    target: str
    branch: bool | None = None  # only on edges leaving a condition

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Edge:
        branch = doc.get("branch")
        return cls(doc["source"], doc["target"], None if branch is None else branch == "true")


@attrs.frozen
class Graph:
    """Nodes and edges of a valid workflow (see validation.py), with adjacency indexes."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @classmethod
    def from_json(
        cls, nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]
    ) -> Graph:
        return cls(tuple(map(Node.from_json, nodes)), tuple(map(Edge.from_json, edges)))

    @functools.cached_property
    def by_id(self) -> Mapping[str, Node]:
        return {node.id: node for node in self.nodes}

    @functools.cached_property
    def trigger(self) -> Node:
        return next(node for node in self.nodes if node.type == "trigger")

    @functools.cached_property
    def outgoing(self) -> Mapping[str, tuple[Edge, ...]]:
        return self._group_edges(lambda edge: edge.source)

    @functools.cached_property
    def incoming(self) -> Mapping[str, tuple[Edge, ...]]:
        return self._group_edges(lambda edge: edge.target)

    def _group_edges(self, key: Any) -> Mapping[str, tuple[Edge, ...]]:
        groups: dict[str, list[Edge]] = {node.id: [] for node in self.nodes}
        for edge in self.edges:
            groups[key(edge)].append(edge)
        return {node_id: tuple(edges) for node_id, edges in groups.items()}
