"""Observing a run with GET /api/executions/{id}/events and stopping it with POST …/cancel."""

from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from flowtrux.access import Role
from tests.e2e.conftest import (
    CreateWorkflow,
    OwnerConnection,
    Server,
    logged_in,
    new_client,
    wait_until_finished,
)
from tests.support import chain, delay, transform, trigger

SLOW = chain(trigger(), transform("first", 1), delay("wait", 30_000), transform("after", 2))


async def events_of(
    client: httpx.AsyncClient, execution_id: str, last_event_id: str | None = None
) -> list[ServerSentEvent]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    url = f"/api/executions/{execution_id}/events"
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        return [event async for event in source.aiter_sse()]


async def until_node_starts(
    stream: AsyncIterator[ServerSentEvent], node_id: str
) -> list[ServerSentEvent]:
    """The events of `stream` up to the `node_start` of `node_id`."""
    events = []
    async for event in stream:
        events.append(event)
        if event.event == "node_start" and event.json()["nodeId"] == node_id:
            return events
    raise AssertionError(f"the stream ended before {node_id} started")


async def start_and_leave(connect: OwnerConnection, workflow_id: str) -> str:
    """Start a run on a connection of its own, read its `start` event, close the connection."""
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with (
        connect() as client,
        aconnect_sse(client, "POST", url, json={}) as source,
        aclosing(source.aiter_sse()) as stream,
    ):
        execution_id: str = (await anext(stream)).json()["executionId"]
    return execution_id


async def test_a_finished_run_replays_exactly_what_its_stream_sent(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1), transform("b", 2)))
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with aconnect_sse(owner, "POST", url, json={}) as source:
        streamed = [event async for event in source.aiter_sse()]
    execution_id = streamed[0].json()["executionId"]

    replayed = await events_of(owner, execution_id)
    assert [(e.id, e.event, e.data) for e in replayed] == [
        (e.id, e.event, e.data) for e in streamed
    ]
    after_three = await events_of(owner, execution_id, last_event_id="3")
    assert [e.id for e in after_three] == [e.id for e in streamed[3:]]


async def test_an_observer_follows_a_live_run_and_the_stop_button_ends_it(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(SLOW)
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with (
        aconnect_sse(owner, "POST", url, json={}) as source,
        aclosing(source.aiter_sse()) as stream,
    ):
        started = await until_node_starts(stream, "wait")
        execution_id = started[0].json()["executionId"]
        async with trio.open_nursery() as nursery:
            observed: list[ServerSentEvent] = []

            async def observe() -> None:
                observed.extend(await events_of(owner, execution_id, last_event_id="2"))

            nursery.start_soon(observe)
            await trio.sleep(0.1)
            stop = await owner.post(f"/api/executions/{execution_id}/cancel")
            assert stop.status_code == 202
            assert stop.json() == {"executionId": execution_id, "status": "CANCELLING"}
            rest = [event async for event in stream]  # the starting stream sees the end too

    assert [(e.event, e.json().get("status")) for e in rest] == [
        ("node_complete", "cancelled"),
        ("cancelled", None),
    ]
    assert rest[-1].json()["error"] == "Execution cancelled by user"
    assert [e.id for e in observed] == [str(seq) for seq in range(3, int(rest[-1].id or 0) + 1)]
    assert observed[-1].event == "cancelled"
    again = await owner.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


async def test_closing_an_observer_never_cancels_the_run(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, owner_connection: OwnerConnection
) -> None:
    doc = chain(trigger(continueOnDisconnect=True), delay("wait", 300), transform("after", 2))
    workflow_id = await create_workflow(doc)
    execution_id = await start_and_leave(owner_connection, workflow_id)
    # The starting request went away; the run goes on in the background.
    with trio.fail_after(5):  # once the server has seen the connection close
        while True:
            query = {"status": "RUNNING", "background": "true"}
            listed = (await owner.get("/api/executions", params=query)).json()["executions"]
            if listed:
                break
            await trio.sleep(0.01)
    assert [e["id"] for e in listed] == [execution_id]
    async with owner_connection() as observer:
        with trio.move_on_after(0.05):
            await events_of(observer, execution_id)  # an observer that gives up early
    history = await wait_until_finished(owner, execution_id)
    assert history["status"] == "COMPLETED"
    assert history["background"] is True


async def test_only_members_who_may_execute_can_stop_a_run(
    server: Server,
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    owner_connection: OwnerConnection,
    http_version: str,
) -> None:
    doc = chain(trigger(continueOnDisconnect=True), delay("wait", 30_000))
    execution_id = await start_and_leave(owner_connection, await create_workflow(doc))
    await server.member("viewer@example.com", Role.VIEWER)
    await server.member("outsider@example.com", Role.OWNER, workspace="Elsewhere")
    stop = f"/api/executions/{execution_id}/cancel"
    for email, status in (("viewer@example.com", 403), ("outsider@example.com", 404)):
        async with new_client(server, http_version) as other:
            await logged_in(other, email)
            response = await other.post(stop)
            assert response.status_code == status, response.text
    assert (await owner.post(stop)).status_code == 202
    assert (await wait_until_finished(owner, execution_id))["status"] == "CANCELLED"


async def test_an_observer_joining_a_live_run_of_over_a_thousand_events_misses_none(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    steps = [transform(f"step-{index}", index) for index in range(520)]
    doc = chain(trigger(), *steps, delay("wait", 60_000), transform("after", 1))
    workflow_id = await create_workflow(doc)
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with (
        aconnect_sse(owner, "POST", url, json={}) as source,
        aclosing(source.aiter_sse()) as stream,
    ):
        streamed = await until_node_starts(stream, "wait")
        assert len(streamed) > 1_000
        execution_id = streamed[0].json()["executionId"]
        async with trio.open_nursery() as nursery:
            observed: dict[str, list[ServerSentEvent]] = {}

            async def observe(last_event_id: str | None) -> None:
                found = await events_of(owner, execution_id, last_event_id)
                observed[last_event_id or "start"] = found

            nursery.start_soon(observe, None)  # joins live, from the first event
            nursery.start_soon(observe, "700")  # resumes after an event past the first page
            await trio.sleep(0.5)
            assert (await owner.post(f"/api/executions/{execution_id}/cancel")).status_code == 202
            streamed += [event async for event in stream]

    whole = [(e.id, e.event, e.data) for e in streamed]
    assert [int(seq) for seq, _, _ in whole] == list(range(1, len(whole) + 1))
    assert whole[-1][1] == "cancelled"
    assert [(e.id, e.event, e.data) for e in observed["start"]] == whole
    assert [(e.id, e.event, e.data) for e in observed["700"]] == whole[700:]


async def test_observers_that_go_away_are_let_go_of_at_once(
    server: Server, owner: httpx.AsyncClient, create_workflow: CreateWorkflow,
    owner_connection: OwnerConnection,
) -> None:  # fmt: skip
    doc = chain(trigger(continueOnDisconnect=True), delay("wait", 30_000))
    execution_id = await start_and_leave(owner_connection, await create_workflow(doc))
    hub = server.app.state.services.runs.hub
    url = f"/api/executions/{execution_id}/events"
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            for _ in range(20):  # observers of a quiet run: nothing is published to them
                nursery.start_soon(read_first_event_then_leave, owner_connection, url)
    with trio.fail_after(5):  # once the server has seen the last connection close
        while True:
            if hub.statistics().subscribers == 0:
                break
            await trio.sleep(0.01)
    assert hub.statistics().queued_bytes == 0
    assert (await owner.post(f"/api/executions/{execution_id}/cancel")).status_code == 202


async def read_first_event_then_leave(connect: OwnerConnection, url: str) -> None:
    async with (
        connect() as client,
        aconnect_sse(client, "GET", url) as source,
        aclosing(source.aiter_sse()) as stream,
    ):
        assert (await anext(stream)).event == "start"
