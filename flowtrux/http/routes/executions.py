"""Execution history, the Stop button, and observing a run's events."""

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowtrux.access import Permission
from flowtrux.engine.states import RunStatus
from flowtrux.errors import BadRequest, Conflict, NotFound
from flowtrux.http.access import current_user, require
from flowtrux.http.execution_json import execution_json_response
from flowtrux.http.json_response import JSONResponse
from flowtrux.http.params import MAX_SEQ, whole_number
from flowtrux.http.services import services
from flowtrux.http.sse import EventStreamResponse
from flowtrux.http.views import execution_summary_view, execution_view
from flowtrux.runs.manager import Stopping
from flowtrux.store.executions import ExecutionFilter, StoredExecution

MAX_LIMIT = 200


def _filter(user_id: str, query: QueryParams) -> ExecutionFilter:
    status, background, limit = query.get("status"), query.get("background"), query.get("limit")
    if status is not None and status not in RunStatus.__members__:
        raise BadRequest(f"'status' must be one of {', '.join(RunStatus)}, not {status!r}.")
    if background not in (None, "true", "false"):
        raise BadRequest("'background' must be true or false.")
    return ExecutionFilter(
        user_id=user_id,
        workflow_id=query.get("workflowId"),
        status=RunStatus(status) if status else None,
        background=None if background is None else background == "true",
        before=query.get("before"),
        limit=50 if limit is None else whole_number(limit, "limit", 1, MAX_LIMIT),
    )


async def _execution(request: Request, permission: Permission) -> StoredExecution:
    """The execution named by the path, if the caller may do `permission` in its workspace."""
    user = await current_user(request)
    execution_id = request.path_params["execution_id"]
    execution = await services(request).store.executions.stored(execution_id)
    if execution is None:
        raise NotFound("execution", execution_id)
    workspace_id = execution.summary.workspace_id
    await require(request, user, workspace_id, permission, "execution", execution_id)
    return execution


async def list_executions(request: Request) -> Response:
    user = await current_user(request)
    where = _filter(user.id, request.query_params)
    executions = await services(request).store.executions.summaries(where)
    return JSONResponse({"executions": [execution_summary_view(e) for e in executions]})


async def get_execution(request: Request) -> Response:
    execution = await _execution(request, Permission.VIEW)
    executions = services(request).store.executions
    fields = execution_view(execution)
    return execution_json_response(executions, execution.summary.id, fields, wrapped_in="execution")


async def cancel_execution(request: Request) -> Response:
    """202 `CANCELLING` for a run being stopped (here, or by the process that runs it), 202
    `INTERRUPTED` for a run whose process is gone, ended now; 409 for a run that had ended."""
    execution = await _execution(request, Permission.EXECUTE)
    execution_id = execution.summary.id
    found = services(request)
    stopping = await found.runs.stop(execution_id)
    if stopping is Stopping.ENDED:
        status = await found.store.executions.status(execution_id)
        ended = f" ({status.value})" if status not in (None, RunStatus.RUNNING) else ""
        raise Conflict(f"Execution '{execution_id}' has already ended{ended}.")
    return JSONResponse({"executionId": execution_id, "status": stopping.value}, status_code=202)


async def execution_events(request: Request) -> Response:
    """Replays the stored events after `Last-Event-ID`, then follows the run to its end: live
    when it runs here, through the store when another process runs it (or ran it and died:
    then its end is the `error` event the lease rules store). Closing it never cancels the run.
    204 when the run has ended and nothing follows."""
    execution = await _execution(request, Permission.VIEW)
    after = _last_event_id(request)
    found = services(request)
    feed = found.runs.subscribe(execution.summary.id, after=after)
    if execution.summary.status is not RunStatus.RUNNING and not await feed.has_more():
        return Response(status_code=204)
    return EventStreamResponse(
        feed,
        keepalive_s=found.settings.keepalive_s,
        http_version=request.scope["http_version"],
    )


def _last_event_id(request: Request) -> int:
    """The header (what a reconnecting EventSource sends), else `?lastEventId=`, else 0."""
    header = request.headers.get("last-event-id", "").strip()
    text = header or request.query_params.get("lastEventId", "").strip()
    return whole_number(text, "Last-Event-ID", 0, MAX_SEQ) if text else 0


routes = [
    Route("/api/executions", list_executions, methods=["GET"]),
    Route("/api/executions/{execution_id}", get_execution, methods=["GET"]),
    Route("/api/executions/{execution_id}/cancel", cancel_execution, methods=["POST"]),
    Route("/api/executions/{execution_id}/events", execution_events, methods=["GET"]),
]
