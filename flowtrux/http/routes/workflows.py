"""Create, read, list, update and delete workflows.

One endpoint class per path, so that a 405 names every method the path allows (`Allow`).
"""

from typing import Any

import trio
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowtrux.access import Permission
from flowtrux.engine.validation import validate_workflow
from flowtrux.errors import BadRequest, InvalidWorkflow, NotFound
from flowtrux.http.access import caller_and_workflow, current_user, require
from flowtrux.http.body import json_object
from flowtrux.http.json_response import JSONResponse
from flowtrux.http.services import services
from flowtrux.http.views import workflow_summary_view, workflow_view
from flowtrux.limiters import run_limiter

VALIDATIONS_AT_ONCE = 2
_validating: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(
    "flowtrux_validating"
)


async def _valid_document(
    request: Request, body: dict[str, Any]
) -> tuple[str, list[Any], list[Any]]:
    """The name, nodes and edges of a valid workflow document. Raises InvalidWorkflow.

    Validation takes up to about a second of CPU for the largest workflow: it runs in a worker
    thread, so that other requests go on meanwhile, and at most `VALIDATIONS_AT_ONCE` at a time
    per process, so that a burst of large documents cannot starve the Trio thread of the GIL (the
    others wait their turn).
    """
    document = {key: body[key] for key in ("name", "nodes", "edges") if key in body}
    max_nodes = services(request).settings.max_workflow_nodes
    limiter = run_limiter(_validating, VALIDATIONS_AT_ONCE)
    problems = await trio.to_thread.run_sync(
        validate_workflow, document, max_nodes, limiter=limiter
    )
    if problems:
        raise InvalidWorkflow(problems)
    return document["name"], document["nodes"], document["edges"]


class WorkflowList(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        user = await current_user(request)
        workspace_id = request.query_params.get("workspaceId")
        if not workspace_id:
            raise BadRequest("Name the workspace: GET /api/workflows?workspaceId=ws-….")
        await require(request, user, workspace_id, Permission.VIEW, "workspace", workspace_id)
        workflows = await services(request).store.workflows.in_workspace(workspace_id)
        return JSONResponse({"workflows": [workflow_summary_view(w) for w in workflows]})

    async def post(self, request: Request) -> Response:
        user = await current_user(request)
        body = await json_object(request)
        workspace_id = body.get("workspaceId")
        if not isinstance(workspace_id, str):
            raise BadRequest("Say which workspace the workflow belongs to: 'workspaceId'.")
        await require(request, user, workspace_id, Permission.EDIT, "workspace", workspace_id)
        name, nodes, edges = await _valid_document(request, body)
        workflow = await services(request).store.workflows.create(workspace_id, name, nodes, edges)
        return JSONResponse({"workflow": workflow_view(workflow)}, status_code=201)


class WorkflowDetail(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        _, workflow = await caller_and_workflow(request, Permission.VIEW)
        return JSONResponse({"workflow": workflow_view(workflow)})

    async def put(self, request: Request) -> Response:
        _, workflow = await caller_and_workflow(request, Permission.EDIT)
        name, nodes, edges = await _valid_document(request, await json_object(request))
        updated = await services(request).store.workflows.update(workflow.id, name, nodes, edges)
        if updated is None:  # deleted meanwhile
            raise NotFound("workflow", workflow.id)
        return JSONResponse({"workflow": workflow_view(updated)})

    async def delete(self, request: Request) -> Response:
        _, workflow = await caller_and_workflow(request, Permission.EDIT)
        await services(request).store.workflows.delete(workflow.id)
        return Response(status_code=204)


routes = [
    Route("/api/workflows", WorkflowList),
    Route("/api/workflows/{workflow_id}", WorkflowDetail),
]
