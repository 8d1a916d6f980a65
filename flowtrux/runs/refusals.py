"""What the journal stores when the store refuses a run's record for good.

The run is stopped and ends FAILED, and it keeps what a client relies on: contiguous event ids,
exactly one terminal event, one log per node. A refused event or log is replaced by a stand-in
at the same place (same `seq`, same `position`) that keeps the node's identity and timing and
says in `error` what could not be stored; the run's terminal event and status become its failed
end.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from flowtrux.engine.states import RunStatus
from flowtrux.errors import StoreUnavailable
from flowtrux.runs import payloads
from flowtrux.runs.outcome import Outcome
from flowtrux.store.executions import Finish, JournalRecord, NewEvent, NodeLogRecord

# What a stand-in keeps of a payload: identity and timing, never data.
SUMMARY_KEYS = frozenset(
    {
        "nodeId", "nodeName", "nodeType", "status", "startedAt", "endedAt", "durationMs",
        "attempt", "workflowId", "workflowName", "executionId", "timestamp", "success",
        "cancelled",
    }
)  # fmt: skip
DATA_KEYS = frozenset({"input", "output"})


def run_refused(refusal: Exception) -> str:
    """The error a refused run ends with."""
    return f"FlowTrux could not store this run's events ({describe(refusal)})"


def describe(refusal: Exception) -> str:
    if isinstance(refusal, StoreUnavailable):  # full, and what it was asked to take cannot fit
        return storable_text(refusal.cause[:300])
    return storable_text(f"{type(refusal).__name__}: {refusal}"[:300])


def as_failed(record: JournalRecord, reason: str) -> JournalRecord:
    """A refused run's terminal event or status as its failed end; any other record as is."""
    outcome = Outcome.failed(reason)
    if isinstance(record, NewEvent) and record.terminal:
        duration_ms = record.payload.get("durationMs", 0)
        payload = payloads.terminal_payload(record.execution_id, outcome, duration_ms)
        return attrs.evolve(record, name=outcome.event_name, payload=payload)
    if isinstance(record, Finish):
        return attrs.evolve(record, status=RunStatus.FAILED, output=None, error=reason)
    return record


def stand_in(record: JournalRecord, refusal: Exception) -> JournalRecord | None:
    """What to store in place of `record` of a refused run, which the store refused with the
    unit it came in; None when nothing needs to take its place. A status is already the failed
    end (`as_failed`): it stands for itself."""
    match record:
        case NewEvent(name=name, payload=payload):
            kind = "log" if name == "node_complete" else "event"  # the history's log too
            return attrs.evolve(record, payload=_summary(payload, kind, refusal))
        case NodeLogRecord(node_id=node_id, log=log):
            summary = _summary(log, "log", refusal)
            return attrs.evolve(record, node_id=storable_text(node_id), log=summary)
        case Finish():
            return record
        case _:
            return None


def _summary(payload: Any, kind: str, refusal: Exception) -> dict[str, Any]:
    summary = {}
    if isinstance(payload, dict):
        summary = {key: _storable(payload[key]) for key in SUMMARY_KEYS & payload.keys()}
        summary |= {key: None for key in DATA_KEYS & payload.keys()}
    summary["error"] = f"FlowTrux could not store this {kind} ({describe(refusal)})"
    return summary


def _storable(value: Any) -> Any:
    match value:
        case str():
            return storable_text(value)
        case bool() | int() | None:
            return value
        case float() if math.isfinite(value):
            return value
        case _:
            return None


def storable_text(text: str) -> str:
    """`text` with anything UTF-8 cannot carry (a lone surrogate) written as an escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
