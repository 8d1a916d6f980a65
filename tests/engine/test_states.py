"""The status tables: what may follow what, and that a refused transition changes nothing."""

import copy
import itertools

import pytest

from flowtrux.engine.states import (
    NODE_TRANSITIONS,
    RUN_TRANSITIONS,
    TERMINAL_NODE_STATUSES,
    TERMINAL_RUN_STATUSES,
    IllegalTransition,
    NodeStatus,
    RunStatus,
    transition,
)
from flowtrux.engine.states import NodeStatus as N
from flowtrux.engine.states import RunStatus as R

ALLOWED_NODE = {
    (N.PENDING, N.RUNNING),
    (N.PENDING, N.SKIPPED),
    (N.RUNNING, N.SUCCESS),
    (N.RUNNING, N.ERROR),
    (N.RUNNING, N.CANCELLED),
}
ALLOWED_RUN = {(R.RUNNING, end) for end in (R.COMPLETED, R.FAILED, R.CANCELLED, R.INTERRUPTED)}
ALL_NODE_PAIRS = list(itertools.product(NodeStatus, repeat=2))
ALL_RUN_PAIRS = list(itertools.product(RunStatus, repeat=2))


def test_status_values_are_the_ones_the_api_shows() -> None:
    assert {status.value for status in NodeStatus} == {
        "pending", "running", "success", "error", "cancelled", "skipped"
    }  # fmt: skip
    assert {status.value for status in RunStatus} == {
        "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"
    }  # fmt: skip


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED_NODE), ids=str)
def test_allowed_node_transitions_return_the_new_status(current: N, new: N) -> None:
    assert transition(NODE_TRANSITIONS, current, new) is new


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED_RUN), ids=str)
def test_allowed_run_transitions_return_the_new_status(current: R, new: R) -> None:
    assert transition(RUN_TRANSITIONS, current, new) is new


@pytest.mark.parametrize(
    ("current", "new"), [pair for pair in ALL_NODE_PAIRS if pair not in ALLOWED_NODE], ids=str
)
def test_every_other_node_transition_is_refused(current: N, new: N) -> None:
    table = copy.deepcopy(dict(NODE_TRANSITIONS))
    status = current
    with pytest.raises(IllegalTransition, match=f"^{current.value} -> {new.value} is not allowed$"):
        status = transition(NODE_TRANSITIONS, status, new)
    assert status is current
    assert dict(NODE_TRANSITIONS) == table


@pytest.mark.parametrize(
    ("current", "new"), [pair for pair in ALL_RUN_PAIRS if pair not in ALLOWED_RUN], ids=str
)
def test_every_other_run_transition_is_refused(current: R, new: R) -> None:
    table = copy.deepcopy(dict(RUN_TRANSITIONS))
    status = current
    with pytest.raises(IllegalTransition, match=f"^{current.value} -> {new.value} is not allowed$"):
        status = transition(RUN_TRANSITIONS, status, new)
    assert status is current
    assert dict(RUN_TRANSITIONS) == table


def test_terminal_sets() -> None:
    assert frozenset({N.SUCCESS, N.ERROR, N.CANCELLED, N.SKIPPED}) == TERMINAL_NODE_STATUSES
    assert frozenset({R.COMPLETED, R.FAILED, R.CANCELLED, R.INTERRUPTED}) == TERMINAL_RUN_STATUSES


@pytest.mark.parametrize("end", sorted(TERMINAL_NODE_STATUSES), ids=str)
def test_a_node_cannot_leave_a_terminal_status(end: N) -> None:
    for new in NodeStatus:
        with pytest.raises(IllegalTransition):
            transition(NODE_TRANSITIONS, end, new)


@pytest.mark.parametrize("end", sorted(TERMINAL_RUN_STATUSES), ids=str)
def test_a_run_cannot_end_twice(end: R) -> None:
    for new in RunStatus:
        with pytest.raises(IllegalTransition):
            transition(RUN_TRANSITIONS, end, new)


def test_a_node_lives_pending_running_then_one_end() -> None:
    status = transition(NODE_TRANSITIONS, N.PENDING, N.RUNNING)
    status = transition(NODE_TRANSITIONS, status, N.SUCCESS)
    with pytest.raises(IllegalTransition, match="success -> error is not allowed"):
        transition(NODE_TRANSITIONS, status, N.ERROR)  # a node cannot complete twice


def test_a_skipped_node_never_runs() -> None:
    status = transition(NODE_TRANSITIONS, N.PENDING, N.SKIPPED)
    with pytest.raises(IllegalTransition, match="skipped -> running is not allowed"):
        transition(NODE_TRANSITIONS, status, N.RUNNING)
