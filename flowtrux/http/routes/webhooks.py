"""Webhooks: a workflow whose trigger says `mode: "webhook"` runs when a caller presents its
token, and answers as its trigger's `webhookResponse` says: `minimal` (202 at once, the run goes
on in the background), `full` (as `execute`), `lastNode` (the last node's output alone)."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowtrux.access import Permission
from flowtrux.errors import NotFound, WrongWebhookToken
from flowtrux.http.access import caller_and_workflow
from flowtrux.http.body import json_object
from flowtrux.http.json_response import JSONResponse
from flowtrux.http.routes.execute import RunResultResponse
from flowtrux.http.services import services
from flowtrux.webhook_tokens import matches, new_token, token_hash


async def make_token(request: Request) -> Response:
    """A new webhook token for the workflow, shown this once; the old one stops working."""
    found = services(request)
    _, workflow = await caller_and_workflow(request, Permission.EDIT)
    token = new_token()
    await found.store.workflows.set_webhook_token_hash(workflow.id, token_hash(token))
    return JSONResponse({"token": token}, status_code=201)


async def call(request: Request) -> Response:
    found = services(request)
    workflow_id = request.path_params["workflow_id"]
    stored_hash = await found.store.workflows.webhook_token_hash(workflow_id)
    if not matches(_bearer(request), stored_hash):  # an unknown workflow has no token either
        raise WrongWebhookToken()
    workflow = await found.store.workflows.get(workflow_id)
    if workflow is None or workflow.graph.trigger.config.get("mode") != "webhook":
        raise NotFound("webhook workflow", workflow_id)
    await found.webhook_quota.hit(workflow.id)
    body = await json_object(request, required=False)
    answer = workflow.graph.trigger.config.get("webhookResponse", "full")
    run = await found.runs.start(
        workflow, body, started_by=None, trigger="webhook", background=answer == "minimal"
    )
    if run.background:
        return JSONResponse({"executionId": run.execution_id}, status_code=202)
    return RunResultResponse(found, run, last_node_only=answer == "lastNode", response_status=True)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


routes = [
    Route("/api/workflows/{workflow_id}/webhook-token", make_token, methods=["POST"]),
    Route("/api/webhooks/{workflow_id}", call, methods=["POST"]),
]
