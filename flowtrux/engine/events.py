"""What the engine tells the outside world while a run goes on.

The engine emits these through a plain callable; it never waits on whoever listens.
"""

from __future__ import annotations

import attrs

from flowtrux.engine.graph import Node
from flowtrux.engine.logs import ExecutionLog


@attrs.frozen
class NodeStarted:
    node_id: str
    node_name: str
    node_type: str

    @classmethod
    def of(cls, node: Node) -> NodeStarted:
        return cls(node.id, node.name, node.type)


@attrs.frozen
class NodeDelta:
    """A piece of a running node's output as it is produced (an agent's streamed tokens), in
    its attempt (a retry starts its output again)."""

    node_id: str
    delta: str
    attempt: int


@attrs.frozen
class NodeCompleted:
    """A node that started has ended: success, error or cancelled."""

    log: ExecutionLog


@attrs.frozen
class NodeSkipped:
    """A node that never started: none of its incoming edges is live, or the run ended first.
    It is not streamed; its log goes to the history."""

    log: ExecutionLog


NodeEvent = NodeStarted | NodeDelta | NodeCompleted | NodeSkipped
