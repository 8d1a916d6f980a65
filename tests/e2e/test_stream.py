"""POST /api/workflows/{id}/execute/stream against real hypercorn, over HTTP/1.1 and HTTP/2."""

import json
import re
from contextlib import aclosing
from typing import Any

import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from flowtrux.engine.scheduler import NOT_STARTED
from tests.e2e.conftest import (
    CreateWorkflow,
    OwnerConnection,
    StartServer,
    logged_in,
    wait_until_finished,
)
from tests.support import chain, condition, delay, edge, fail, transform, trigger, workflow

TERMINAL = {"complete", "error", "cancelled"}


def stream_url(workflow_id: str) -> str:
    return f"/api/workflows/{workflow_id}/execute/stream"


async def read_all(
    client: httpx.AsyncClient, workflow_id: str, body: Any = None
) -> list[ServerSentEvent]:
    async with aconnect_sse(client, "POST", stream_url(workflow_id), json=body or {}) as source:
        return [event async for event in source.aiter_sse()]


TRIAGE = workflow(
    [
        trigger(staticData={"tier": "pro", "priority": "normal"}),
        transform("enrich", {"priority": "{{trigger.data.priority}}"}),
        condition("urgent", "enrich.output.priority == 'high'"),
        transform("page", {"queue": "on-call"}),
        transform("queue", {"queue": "normal"}),
    ],
    [
        edge("trigger", "enrich"),
        edge("enrich", "urgent"),
        edge("urgent", "page", "true"),
        edge("urgent", "queue", "false"),
    ],
    name="Triage",
)


async def test_events_come_in_the_product_docs_order_and_shape(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, http_version: str
) -> None:
    workflow_id = await create_workflow(TRIAGE)
    async with aconnect_sse(
        owner, "POST", stream_url(workflow_id), json={"priority": "high"}
    ) as source:
        response = source.response
        events = [event async for event in source.aiter_sse()]

    assert response.http_version == http_version
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    if http_version == "HTTP/1.1":
        assert response.headers["connection"] == "keep-alive"
    else:
        assert "connection" not in response.headers

    assert [event.id for event in events] == [str(seq) for seq in range(1, len(events) + 1)]
    assert [(event.event, event.json().get("nodeId")) for event in events] == [
        ("start", None),
        ("node_start", "trigger"),
        ("node_complete", "trigger"),
        ("node_start", "enrich"),
        ("node_complete", "enrich"),
        ("node_start", "urgent"),
        ("node_complete", "urgent"),
        ("node_start", "page"),
        ("node_complete", "page"),
        ("complete", None),
    ]  # "queue" was skipped: it sends neither event
    start, complete = events[0].json(), events[-1].json()
    execution_id = complete["executionId"]
    assert start == {
        "workflowId": workflow_id,
        "workflowName": "Triage",
        "executionId": execution_id,
        "timestamp": start["timestamp"],
    }
    assert events[1].json() == {"nodeId": "trigger", "nodeName": "Start", "nodeType": "trigger"}
    trigger_log = events[2].json()
    assert trigger_log["input"] == {
        "body": {"priority": "high"},
        "staticData": {"tier": "pro", "priority": "normal"},
    }
    assert trigger_log["output"] == {"tier": "pro", "priority": "high"}
    assert set(trigger_log) >= {
        "nodeId", "nodeName", "nodeType", "status", "input", "output", "error",
        "startedAt", "endedAt", "durationMs", "attempt",
    }  # fmt: skip
    urgent_log = events[6].json()
    assert urgent_log["output"] is True
    assert urgent_log["condition"] == "enrich.output.priority == 'high'"
    assert urgent_log["variables"] == {"enrich.output.priority": "high"}
    assert complete == {
        "success": True,
        "executionId": execution_id,
        "error": None,
        "cancelled": False,
        "output": {"queue": "on-call"},
        "durationMs": complete["durationMs"],
    }

    history = await wait_until_finished(owner, execution_id)
    assert history["status"] == "COMPLETED"
    assert [(log["nodeId"], log["status"]) for log in history["logs"]] == [
        ("trigger", "success"),
        ("enrich", "success"),
        ("urgent", "success"),
        ("queue", "skipped"),
        ("page", "success"),
    ]


async def test_a_failing_node_sends_one_error_event_and_the_run_is_failed(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(
        chain(trigger(), fail("boom", "card {{trigger.data.card}} declined"), transform("never", 1))
    )
    events = await read_all(owner, workflow_id, {"card": "4242"})
    terminal = [event for event in events if event.event in TERMINAL]
    assert [event.event for event in terminal] == ["error"]
    assert events[-1].event == "error"
    payload = events[-1].json()
    assert payload["success"] is False
    assert payload["cancelled"] is False
    assert "card 4242 declined" in payload["error"]
    assert "never" not in [event.json().get("nodeId") for event in events]
    history = await wait_until_finished(owner, payload["executionId"])
    assert history["status"] == "FAILED"
    assert [(log["nodeId"], log["status"]) for log in history["logs"]] == [
        ("trigger", "success"),
        ("boom", "error"),
        ("never", "skipped"),  # every node has a log; this one says why it never ran
    ]
    assert history["logs"][-1]["error"] == NOT_STARTED


SLOW = chain(trigger(), transform("first", 1), delay("wait", 30_000), transform("after", 2))


async def close_after(
    connect: OwnerConnection, workflow_id: str, last: tuple[str, str | None] | None
) -> tuple[str | None, list[ServerSentEvent]]:
    """Stream a run on a connection of its own and close that connection once the event `last`
    (name, nodeId) arrived, or right after the response headers when `last` is None.

    The whole connection is closed: httpx does not reset an HTTP/2 stream it stops reading
    (encode/httpcore#943); test_h2_reset.py covers a client that does.
    """
    seen: list[ServerSentEvent] = []
    async with (
        connect() as client,
        aconnect_sse(client, "POST", stream_url(workflow_id), json={}) as source,
    ):
        if last is None:
            return None, seen
        async with aclosing(source.aiter_sse()) as events:
            async for event in events:
                seen.append(event)
                if (event.event, event.json().get("nodeId")) == last:
                    break
    return seen[0].json()["executionId"], seen


async def newest_execution(client: httpx.AsyncClient, workflow_id: str) -> str:
    response = await client.get("/api/executions", params={"workflowId": workflow_id})
    execution_id: str = response.json()["executions"][0]["id"]
    return execution_id


async def assert_cancelled_with_nothing_after(
    client: httpx.AsyncClient, execution_id: str, *, never_started: set[str]
) -> dict[str, Any]:
    history = await wait_until_finished(client, execution_id)
    assert history["status"] == "CANCELLED"
    assert history["error"] == "Execution cancelled by user"
    logs = {log["nodeId"]: log for log in history["logs"]}
    assert sorted(logs) == sorted(node["id"] for node in SLOW["nodes"])  # one log each
    for node_id in never_started:
        assert (logs[node_id]["status"], logs[node_id]["error"]) == ("skipped", NOT_STARTED)
    # Nodes that ended before the cancel, at most the one it stopped, then none that started.
    letters = {"success": "s", "cancelled": "c", "skipped": "k"}
    statuses = "".join(letters[log["status"]] for log in history["logs"])
    assert re.fullmatch("s*c?k+", statuses), statuses
    return history


async def test_closing_right_after_the_headers_cancels_the_run(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, owner_connection: OwnerConnection
) -> None:
    workflow_id = await create_workflow(SLOW)
    await close_after(owner_connection, workflow_id, None)
    execution_id = await newest_execution(owner, workflow_id)
    await assert_cancelled_with_nothing_after(owner, execution_id, never_started={"after"})


async def test_closing_during_a_node_cancels_that_node(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, owner_connection: OwnerConnection
) -> None:
    workflow_id = await create_workflow(SLOW)
    execution_id, _ = await close_after(owner_connection, workflow_id, ("node_start", "wait"))
    assert execution_id is not None
    history = await assert_cancelled_with_nothing_after(
        owner, execution_id, never_started={"after"}
    )
    wait_log = history["logs"][-2]
    assert (wait_log["nodeId"], wait_log["status"], wait_log["error"]) == (
        "wait",
        "cancelled",
        "cancelled",
    )
    assert wait_log["durationMs"] < 5_000  # stopped at once, not after its 30 s


async def test_closing_between_nodes_starts_no_further_node(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, owner_connection: OwnerConnection
) -> None:
    workflow_id = await create_workflow(SLOW)
    execution_id, _ = await close_after(owner_connection, workflow_id, ("node_complete", "first"))
    assert execution_id is not None
    await assert_cancelled_with_nothing_after(owner, execution_id, never_started={"after"})


async def test_execute_answers_once_with_the_whole_run(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(TRIAGE)
    response = await owner.post(f"/api/workflows/{workflow_id}/execute", json={"priority": "low"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["cancelled"] is False
    assert body["error"] is None
    assert body["output"] == {"queue": "normal"}
    assert isinstance(body["durationMs"], int)
    assert [(log["nodeId"], log["status"]) for log in body["logs"]] == [
        ("trigger", "success"),
        ("enrich", "success"),
        ("urgent", "success"),
        ("page", "skipped"),
        ("queue", "success"),
    ]


async def test_closing_execute_cancels_the_run(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, owner_connection: OwnerConnection
) -> None:
    workflow_id = await create_workflow(SLOW)
    async with owner_connection() as client:
        with trio.move_on_after(0.5):
            await client.post(f"/api/workflows/{workflow_id}/execute", json={})
    execution_id = await newest_execution(owner, workflow_id)
    history = await assert_cancelled_with_nothing_after(
        owner, execution_id, never_started={"after"}
    )
    assert [(log["nodeId"], log["status"]) for log in history["logs"][-2:]] == [
        ("wait", "cancelled"),
        ("after", "skipped"),
    ]


async def test_a_silent_stream_sends_keepalive_comments(
    start_server: Any, http_version: str
) -> None:
    from tests.e2e.conftest import logged_in, new_client

    server = await start_server(keepalive_s=0.1)
    workspace_id = await server.member("owner@example.com")
    async with new_client(server, http_version) as client:
        await logged_in(client, "owner@example.com")
        doc = {"workspaceId": workspace_id, **chain(trigger(), delay("wait", 500))}
        workflow_id = (await client.post("/api/workflows", json=doc)).json()["workflow"]["id"]
        async with client.stream("POST", stream_url(workflow_id), json={}) as response:
            lines = [line async for line in response.aiter_lines()]
    assert ": keepalive" in lines
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert names[-1] == "complete"
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert data[-1]["success"] is True


async def test_a_stream_starts_with_a_retry_hint_in_its_first_event(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    """A browser's EventSource waits that long before reconnecting; the hint is part of the
    first event's block, so no client sees an event more."""
    workflow_id = await create_workflow(TRIAGE)
    async with owner.stream("POST", stream_url(workflow_id), json={}) as streamed:
        text = (await streamed.aread()).decode()
    assert text.startswith("retry: 3000\nid: 1\nevent: start\n")
    assert text.count("retry:") == 1
    execution_id = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])["executionId"]
    replayed = await owner.get(f"/api/executions/{execution_id}/events")
    assert replayed.text.startswith("retry: 3000\nid: 1\nevent: start\n")


async def test_the_retry_hint_comes_first_also_when_a_keepalive_does(
    start_server: StartServer,
) -> None:
    """An observer that asks from the last event of a run still going first gets silence, so
    a keepalive: the hint goes with it (a block without data is no event)."""
    server = await start_server(keepalive_s=0.2)
    space = await server.member("owner@example.com")
    async with httpx.AsyncClient(base_url=server.url) as owner:
        await logged_in(owner, "owner@example.com")
        doc = {"workspaceId": space, **chain(trigger(), delay("wait", 5_000))}
        workflow_id = (await owner.post("/api/workflows", json=doc)).json()["workflow"]["id"]
        async with aconnect_sse(owner, "POST", stream_url(workflow_id), json={}) as source:
            events = aiter(source.aiter_sse())
            seen = [await anext(events) for _ in range(4)]  # start, trigger's two, wait's start
            execution_id = seen[0].json()["executionId"]
            url = f"/api/executions/{execution_id}/events"
            headers = {"Last-Event-ID": seen[-1].id}
            async with owner.stream("GET", url, headers=headers) as observed:
                first = await anext(observed.aiter_bytes())
    assert first == b"retry: 3000\n: keepalive\n\n"
