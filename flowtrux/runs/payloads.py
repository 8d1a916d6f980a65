"""Events as the stream and the history show them: camelCase JSON, one line each."""

import json
from typing import Any

from flowtrux.engine.events import NodeStarted
from flowtrux.engine.logs import ExecutionLog
from flowtrux.runs.outcome import Outcome
from flowtrux.timestamps import to_iso


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def start_payload(
    workflow_id: str, workflow_name: str, execution_id: str, timestamp: str
) -> dict[str, Any]:
    return {
        "workflowId": workflow_id,
        "workflowName": workflow_name,
        "executionId": execution_id,
        "timestamp": timestamp,
    }


def node_start_payload(event: NodeStarted) -> dict[str, Any]:
    return {"nodeId": event.node_id, "nodeName": event.node_name, "nodeType": event.node_type}


def log_payload(log: ExecutionLog) -> dict[str, Any]:
    return {
        "nodeId": log.node_id,
        "nodeName": log.node_name,
        "nodeType": log.node_type,
        "status": log.status.value,
        "input": log.input,
        "output": log.output,
        "error": log.error,
        "startedAt": to_iso(log.started_at) if log.started_at else None,
        "endedAt": to_iso(log.ended_at) if log.ended_at else None,
        "durationMs": log.duration_ms,
        "attempt": log.attempt,
        **log.debug,
    }


def terminal_payload(execution_id: str, outcome: Outcome, duration_ms: int) -> dict[str, Any]:
    payload = {
        "success": outcome.success,
        "executionId": execution_id,
        "error": outcome.error,
        "cancelled": outcome.is_cancelled,
        "durationMs": duration_ms,
    }
    if outcome.success:
        payload["output"] = outcome.output
    return payload
