"""The JSON shapes of api.md: camelCase keys, ISO-8601 UTC timestamps."""

from datetime import datetime
from typing import Any

from flowtrux.access import Permission
from flowtrux.http.execution_json import RawJson
from flowtrux.store.executions import ExecutionSummary, StoredExecution
from flowtrux.store.users import User
from flowtrux.store.workflows import Workflow, WorkflowSummary
from flowtrux.store.workspaces import Membership
from flowtrux.timestamps import to_iso


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name}


def membership_view(membership: Membership) -> dict[str, Any]:
    return {
        "id": membership.workspace.id,
        "name": membership.workspace.name,
        "role": membership.role.value,
        "permissions": {p.value: membership.role.can(p) for p in Permission},
    }


def workflow_view(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "workspaceId": workflow.workspace_id,
        "name": workflow.name,
        "nodes": workflow.nodes,
        "edges": workflow.edges,
        "createdAt": _iso(workflow.created_at),
        "updatedAt": _iso(workflow.updated_at),
    }


def workflow_summary_view(workflow: WorkflowSummary) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "name": workflow.name,
        "workspaceId": workflow.workspace_id,
        "updatedAt": _iso(workflow.updated_at),
    }


def execution_summary_view(execution: ExecutionSummary) -> dict[str, Any]:
    return {
        "id": execution.id,
        "workflowId": execution.workflow_id,
        "workflowName": execution.workflow_name,
        "workspaceId": execution.workspace_id,
        "status": execution.status.value,
        "trigger": execution.trigger,
        "background": execution.background,
        "startedAt": _iso(execution.started_at),
        "finishedAt": _iso(execution.finished_at),
        "durationMs": execution.duration_ms,
        "error": execution.error,
    }


def execution_view(execution: StoredExecution) -> dict[str, Any]:
    """The history's fields of an execution; its logs follow (see execution_json)."""
    return {
        **execution_summary_view(execution.summary),
        "triggerData": RawJson(execution.trigger_data),
        "output": RawJson(execution.output),
        "callbacks": RawJson(execution.callbacks),
    }
