"""A Stop reaches into the socket: a run cancelled while a node waits on a remote server (its
request in flight, its body being read, a model streaming) closes that connection at once, the
remote sees it go within 200 ms, and no retry starts after."""

from collections.abc import Callable
from contextlib import aclosing

import httpx
import pytest
import trio
import trio.lowlevel
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.e2e.conftest import CreateWorkflow, Server, wait_until_finished
from tests.e2e.reaching_out.runs import until
from tests.outside.asgi import DisconnectLog
from tests.outside.fake_llm import Answer, FakeLLM
from tests.outside.target import Target
from tests.support import agent, chain, http, trigger

SEEN_WITHIN_S = 0.2


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def http_version(request: pytest.FixtureRequest) -> str:
    """A Stop comes over either protocol."""
    version: str = request.param
    return version


RETRY = {"maxAttempts": 3, "backoffMs": 0}


async def stop_while(
    owner: httpx.AsyncClient,
    workflow_id: str,
    waiting: Callable[[ServerSentEvent], bool],
    remote: DisconnectLog,
    request_id: str,
    arrived: Callable[[], bool],
) -> tuple[float, list[ServerSentEvent]]:
    """Run `workflow_id`, press Stop once an event matches `waiting` and the remote has the
    request (`arrived`), and return how long the remote took to see its client leave, and the
    events of the stream."""
    url = f"/api/workflows/{workflow_id}/execute/stream"
    events: list[ServerSentEvent] = []
    async with (
        aconnect_sse(owner, "POST", url, json={}) as source,
        aclosing(source.aiter_sse()) as stream,
    ):
        async for event in stream:
            events.append(event)
            if waiting(event):
                break
        await until(arrived)
        execution_id = events[0].json()["executionId"]
        pressed = trio.current_time()
        stop = await owner.post(f"/api/executions/{execution_id}/cancel")
        assert stop.status_code == 202, stop.text
        left = await remote.wait_disconnect(request_id, 5)
        events += [event async for event in stream]
    return left - pressed, events


def node_started(node_id: str) -> Callable[[ServerSentEvent], bool]:
    return lambda event: event.event == "node_start" and event.json()["nodeId"] == node_id


def assert_cancelled_in(events: list[ServerSentEvent], node_id: str) -> None:
    stopped = [e.json() for e in events if e.event == "node_complete"][-1]
    assert (stopped["nodeId"], stopped["status"]) == (node_id, "cancelled")
    assert events[-1].event == "cancelled"


@pytest.mark.parametrize("path", ["slow?ms=30000", "slow-body?chunks=300&ms=100"])
async def test_a_stop_closes_the_request_in_flight(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    target: Target,
    path: str,
) -> None:
    """Waiting for the answer's head, or reading its body: the target sees its client leave
    within 200 ms of the Stop, and the node's retry does not send it again."""
    url = f"{target.url}/{path}&rid=stopped"
    workflow_id = await create_workflow(chain(trigger(), http("call", {"url": url}, retry=RETRY)))

    seen_after, events = await stop_while(
        owner,
        workflow_id,
        node_started("call"),
        target,
        "stopped",
        lambda: bool(target.requests),
    )

    assert seen_after < SEEN_WITHIN_S
    assert_cancelled_in(events, "call")
    await trio.sleep(0.3)  # a retry, were one to start, would have arrived by now
    assert len(target.requests) == 1
    execution = await wait_until_finished(owner, events[0].json()["executionId"])
    assert execution["status"] == "CANCELLED"


async def test_a_stop_closes_the_models_stream(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, llm: FakeLLM
) -> None:
    """The model has streamed its first piece and goes on thinking: the Stop closes its stream
    within 200 ms, and the piece it sent is in the run's events."""
    llm.script = [Answer("Thinking about it", chunks=["Think", "ing about it"], hang=True)]
    config = {"model": "m", "prompt": "Hi", "stream": True}
    workflow_id = await create_workflow(chain(trigger(), agent("ask", config, retry=RETRY)))

    def first_delta(event: ServerSentEvent) -> bool:
        return event.event == "node_delta"

    seen_after, events = await stop_while(
        owner, workflow_id, first_delta, llm, "0", lambda: bool(llm.requests)
    )

    assert seen_after < SEEN_WITHIN_S
    assert [e.json()["delta"] for e in events if e.event == "node_delta"] == ["Think"]
    assert_cancelled_in(events, "ask")
    await trio.sleep(0.3)
    assert len(llm.requests) == 1


async def test_closing_the_stream_closes_the_request_in_flight(
    server: Server, owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    """The caller goes away instead of pressing Stop: the run is cancelled, and so is its
    request. (Over HTTP/1.1: httpx's HTTP/2 client does not reset a stream it leaves.)"""
    url = f"{target.url}/slow?ms=30000&rid=gone"
    workflow_id = await create_workflow(chain(trigger(), http("call", {"url": url})))
    stream_url = f"/api/workflows/{workflow_id}/execute/stream"
    events: list[ServerSentEvent] = []
    async with httpx.AsyncClient(base_url=server.url, cookies=owner.cookies) as caller:
        async with (
            aconnect_sse(caller, "POST", stream_url, json={}) as source,
            aclosing(source.aiter_sse()) as stream,
        ):
            async for event in stream:
                events.append(event)
                if node_started("call")(event):
                    break
            await until(lambda: bool(target.requests))
        closed = trio.current_time()
    left = await target.wait_disconnect("gone", 5)
    assert left - closed < SEEN_WITHIN_S
    execution = await wait_until_finished(owner, events[0].json()["executionId"])
    assert execution["status"] == "CANCELLED"
