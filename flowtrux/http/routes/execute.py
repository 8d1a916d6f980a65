"""Running a workflow: one JSON answer when the run ends, or its events as they happen.

Every 4xx is decided before the run starts; a stream is only opened for a run that has started.
Closing the connection of either call detaches from the run, which cancels it unless the trigger
says `continueOnDisconnect`.
"""

from functools import partial

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from flowtrux.access import Permission
from flowtrux.engine.states import RunStatus
from flowtrux.errors import EndNotStored
from flowtrux.http.access import caller_and_workflow
from flowtrux.http.body import json_object
from flowtrux.http.disconnect import cancel_on_disconnect
from flowtrux.http.execution_json import RawJson, execution_json_response
from flowtrux.http.services import Services, services
from flowtrux.http.sse import EventStreamResponse
from flowtrux.runs.run import Run


async def _start(request: Request) -> tuple[Services, Run]:
    found = services(request)
    user, workflow = await caller_and_workflow(request, Permission.EXECUTE)
    found.execute_quota.hit(user.id)
    body = await json_object(request, required=False)
    run = await found.runs.start(workflow, body, started_by=user.id)
    return found, run


async def execute_stream(request: Request) -> Response:
    found, run = await _start(request)
    return EventStreamResponse(
        found.runs.subscribe(run.execution_id),
        on_close=partial(found.runs.detach, run),
        keepalive_s=found.settings.keepalive_s,
        http_version=request.scope["http_version"],
    )


async def execute(request: Request) -> Response:
    found, run = await _start(request)
    return RunResultResponse(found, run)


class RunResultResponse(Response):
    """Waits for the run's end, watching for a disconnect meanwhile, then answers in JSON: the
    run (`execute`'s body), or with `last_node_only` the output of the node that succeeded last
    alone (a webhook's `lastNode`; a run that did not complete still answers the run). With
    `response_status`, a completed run answers with the `status` of the `response` node whose
    output is the run's (the first in the document that ran), 200 when it names none."""

    def __init__(
        self,
        found: Services,
        run: Run,
        *,
        last_node_only: bool = False,
        response_status: bool = False,
    ) -> None:
        self.found = found
        self.run = run
        self.last_node_only = last_node_only
        self.response_status = response_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_on_disconnect, receive, nursery.cancel_scope)
                await self.run.finished.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.found.runs.detach(self.run)
        if not self.run.finished.is_set():
            return  # the client went away
        executions = self.found.store.executions
        found = await executions.stored_with_logs(self.run.execution_id)
        if found is None or found[0].summary.status is RunStatus.RUNNING:
            raise EndNotStored(self.run.execution_id)
        execution, first_logs = found
        summary = execution.summary
        completed = summary.status is RunStatus.COMPLETED
        status = await self._status() if completed and self.response_status else 200
        if self.last_node_only and completed:
            output = await executions.last_output(summary.id) or b"null"
            await Response(output, status, media_type="application/json")(scope, receive, send)
            return
        fields = {
            "success": summary.status is RunStatus.COMPLETED,
            "executionId": summary.id,
            "output": RawJson(execution.output),
            "error": summary.error,
            "cancelled": summary.status is RunStatus.CANCELLED,
            "durationMs": summary.duration_ms,
        }
        answer = execution_json_response(executions, summary.id, fields, first_page=first_logs)
        answer.status_code = status
        await answer(scope, receive, send)

    async def _status(self) -> int:
        for node in self.run.graph.nodes:
            if node.type != "response":
                continue
            if await self.found.store.executions.succeeded(self.run.execution_id, node.id):
                return int(node.config.get("status", 200))  # JSON Schema's integers: 201.0 too
        return 200


routes = [
    Route("/api/workflows/{workflow_id}/execute", execute, methods=["POST"]),
    Route("/api/workflows/{workflow_id}/execute/stream", execute_stream, methods=["POST"]),
]
