"""Small helpers for the engine tests: workflow documents from compact descriptions, and a
recorder to pass as the scheduler's `emit`."""

from __future__ import annotations

import re

import trio

from flowtrux.engine.events import NodeCompleted, NodeDelta, NodeEvent, NodeSkipped, NodeStarted
from flowtrux.engine.graph import Graph
from flowtrux.engine.logs import ExecutionLog
from flowtrux.engine.validation import validate_workflow
from tests.support import Doc, condition, delay, fail, node, response, transform, trigger

__all__ = ["Doc", "condition", "delay", "fail", "node", "response", "transform", "trigger"]


_ARROW = re.compile(r"\s*>(?:(true|false)>)?\s*")


def links(*chains: str) -> list[Doc]:
    """Edges from chains such as `"trigger > a > b"`; `"c >true> x"` is a branch edge."""
    edges: list[Doc] = []
    for chain in chains:
        parts = _ARROW.split(chain.strip())
        ids, branches = parts[::2], parts[1::2]
        for source, target, branch in zip(ids[:-1], ids[1:], branches, strict=True):
            edge: Doc = {"source": source, "target": target}
            if branch is not None:
                edge["branch"] = branch
            edges.append(edge)
    return edges


def workflow(nodes: list[Doc], *chains: str) -> Doc:
    return {"name": "Test workflow", "nodes": nodes, "edges": links(*chains)}


def graph(nodes: list[Doc], *chains: str) -> Graph:
    """The graph of a workflow that must be valid (the scheduler only ever runs valid ones)."""
    doc = workflow(nodes, *chains)
    assert validate_workflow(doc) == []
    return Graph.from_json(doc["nodes"], doc["edges"])


def big_chain(prefix: str, length: int) -> tuple[list[Doc], str]:
    """`length` transforms `<prefix>0 … <prefix>N-1`, each outputting its index, and their chain."""
    ids = [f"{prefix}{i}" for i in range(length)]
    return [transform(node_id, i) for i, node_id in enumerate(ids)], " > ".join(ids)


class Recorder:
    """The scheduler's `emit`: keeps every event with the (virtual) time it arrived."""

    def __init__(self) -> None:
        self.t0 = trio.current_time()
        self.events: list[NodeEvent] = []
        self.times: list[float] = []

    def append(self, event: NodeEvent) -> None:
        self.events.append(event)
        self.times.append(trio.current_time() - self.t0)

    def elapsed(self) -> float:
        return trio.current_time() - self.t0

    def trace(self) -> list[str]:
        """One line per event: `start a`, `done a success`, `skip b`."""
        return [_describe(event) for event in self.events]

    def started(self) -> list[str]:
        return [event.node_id for event in self.events if isinstance(event, NodeStarted)]

    def skipped(self) -> list[str]:
        return [event.log.node_id for event in self.events if isinstance(event, NodeSkipped)]

    def log(self, node_id: str) -> ExecutionLog:
        """The one log (completed or skipped) of `node_id`."""
        logs = [
            event.log
            for event in self.events
            if isinstance(event, NodeCompleted | NodeSkipped) and event.log.node_id == node_id
        ]
        assert len(logs) == 1, f"{node_id} has {len(logs)} logs"
        return logs[0]

    def time_of(self, line: str) -> float:
        return self.times[self.trace().index(line)]

    def assert_every_start_completed_once(self) -> None:
        """Each started node completes exactly once, after its start; skipped nodes never start."""
        running: set[str] = set()
        seen: set[str] = set()
        for line in self.trace():
            kind, node_id = line.split()[:2]
            if kind == "start":
                assert node_id not in seen, f"{node_id} started twice or after being skipped"
                running.add(node_id)
            elif kind == "done":
                assert node_id in running, f"{node_id} completed without a pending start"
                running.remove(node_id)
            else:
                assert node_id not in seen, f"{node_id} skipped after it was logged"
            seen.add(node_id)
        assert running == set(), f"started but never completed: {sorted(running)}"


def _describe(event: NodeEvent) -> str:
    match event:
        case NodeStarted():
            return f"start {event.node_id}"
        case NodeDelta():
            return f"delta {event.node_id}"
        case NodeCompleted():
            return f"done {event.log.node_id} {event.log.status.value}"
        case NodeSkipped():
            return f"skip {event.log.node_id}"
