"""ExecutionLog: what one node did in one run, as the history and `node_complete` show it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from flowtrux.engine.graph import Node
from flowtrux.engine.states import NodeStatus


@attrs.frozen
class ExecutionLog:
    node_id: str
    node_name: str
    node_type: str
    status: NodeStatus
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    attempt: int = 0
    debug: Mapping[str, Any] = attrs.field(factory=dict)  # condition, variables, llmRequest, …

    @classmethod
    def skipped(cls, node: Node, reason: str | None = None) -> ExecutionLog:
        """The log of a node that never started: its path was dead, or (`reason`) the run
        ended first."""
        return cls(node.id, node.name, node.type, NodeStatus.SKIPPED, error=reason)
