"""Execution history, the Stop button, and observing a run's events."""

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowtrux.access import Permission
from flowtrux.engine.states import RunStatus
from flowtrux.errors import BadRequest, Conflict, NotFound
from flowtrux.http.access import current_user, require
from flowtrux.http.services import services
from flowtrux.http.sse import EventStreamResponse
from flowtrux.http.views import execution_summary_view, execution_view
from flowtrux.store.executions import ExecutionDetail, ExecutionFilter

MAX_LIMIT = 200


def _filter(user_id: str, query: QueryParams) -> ExecutionFilter:
    status, background, limit = query.get("status"), query.get("background"), query.get("limit")
    if status is not None and status not in RunStatus.__members__:
        raise BadRequest(f"'status' must be one of {', '.join(RunStatus)}, not {status!r}.")
    if background not in (None, "true", "false"):
        raise BadRequest("'background' must be true or false.")
    if limit is not None and not (limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT):
        raise BadRequest(f"'limit' must be a whole number from 1 to {MAX_LIMIT}.")
    return ExecutionFilter(
        user_id=user_id,
        workflow_id=query.get("workflowId"),
        status=RunStatus(status) if status else None,
        background=None if background is None else background == "true",
        before=query.get("before"),
        limit=int(limit) if limit else 50,
    )


async def _execution(request: Request, permission: Permission) -> ExecutionDetail:
    """The execution named by the path, if the caller may do `permission` in its workspace."""
    user = await current_user(request)
    execution_id = request.path_params["execution_id"]
    execution = await services(request).store.executions.get(execution_id)
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
    return JSONResponse({"execution": execution_view(execution)})


async def cancel_execution(request: Request) -> Response:
    execution = await _execution(request, Permission.EXECUTE)
    execution_id = execution.summary.id
    if not services(request).runs.stop(execution_id):
        status = execution.summary.status
        ended = status.value if status is not RunStatus.RUNNING else "no longer running here"
        raise Conflict(f"Execution '{execution_id}' has already ended ({ended}).")
    return JSONResponse({"executionId": execution_id, "status": "CANCELLING"}, status_code=202)


async def execution_events(request: Request) -> Response:
    """Replays the stored events after `Last-Event-ID`, then follows the run live to its end.
    Closing it never cancels the run."""
    execution = await _execution(request, Permission.VIEW)
    last_event_id = request.headers.get("last-event-id", "0").strip() or "0"
    if not last_event_id.isdigit():
        raise BadRequest("'Last-Event-ID' must be the id (a whole number) of an event received.")
    found = services(request)
    return EventStreamResponse(
        found.runs.subscribe(execution.summary.id, after=int(last_event_id)),
        keepalive_s=found.settings.keepalive_s,
        http_version=request.scope["http_version"],
    )


routes = [
    Route("/api/executions", list_executions, methods=["GET"]),
    Route("/api/executions/{execution_id}", get_execution, methods=["GET"]),
    Route("/api/executions/{execution_id}/cancel", cancel_execution, methods=["POST"]),
    Route("/api/executions/{execution_id}/events", execution_events, methods=["GET"]),
]
