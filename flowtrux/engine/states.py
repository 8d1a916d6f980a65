"""Run and node statuses, and the transitions allowed between them.

One table per kind of status and one function that applies a transition or raises: an illegal
transition changes nothing, so "a node completes twice" or "a run ends twice" cannot happen quietly.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"  # the process that ran it died; set when a later process finds it


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.RUNNING: frozenset(
        {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED}
    ),
}

NODE_TRANSITIONS: Mapping[NodeStatus, frozenset[NodeStatus]] = {
    NodeStatus.PENDING: frozenset({NodeStatus.RUNNING, NodeStatus.SKIPPED}),
    NodeStatus.RUNNING: frozenset({NodeStatus.SUCCESS, NodeStatus.ERROR, NodeStatus.CANCELLED}),
}

TERMINAL_RUN_STATUSES = frozenset(RunStatus) - RUN_TRANSITIONS.keys()
TERMINAL_NODE_STATUSES = frozenset(NodeStatus) - NODE_TRANSITIONS.keys()


class IllegalTransition(RuntimeError):
    """A status was asked to move somewhere its table does not allow."""


S = TypeVar("S", RunStatus, NodeStatus)


def transition(table: Mapping[S, frozenset[S]], current: S, new: S) -> S:
    """Return `new` if `table` allows `current -> new`, else raise IllegalTransition."""
    if new not in table.get(current, frozenset()):
        raise IllegalTransition(f"{current.value} -> {new.value} is not allowed")
    return new
