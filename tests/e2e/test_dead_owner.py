"""Runs whose process is elsewhere, over real HTTP between two `flowtrux serve` processes on one
store: an observer on one follows a run of the other to its end, and when that process is
killed (SIGKILL, so it ends nothing), to the `error` event the lease rules store; the Stop
button of either works on a run of the other, alive or dead."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from tests.e2e.processes import create_workflow, flowtrux, log_in, running, server_env
from tests.support import chain, delay, trigger

INTERRUPTED = "Execution interrupted: the process running it stopped"
KEEPALIVE = (": keepalive", None)  # what `stream_items` gives for a keepalive comment
# A first node the observer sees end live, then one that outlives the test.
LONG_RUN = chain(trigger(continueOnDisconnect=True), delay("first", 1500), delay("wait", 600_000))


@pytest.fixture
async def env(tmp_path: Path) -> dict[str, str]:
    """Servers on one database, with a 3 s lease and keepalives every 0.5 s."""
    return await server_env(tmp_path, lease_s="3", keepalive_s="0.5")


async def start_in_background(client: httpx.AsyncClient, workflow_id: str) -> str:
    """Start a run, wait for its node `first` to start, and leave it running; its id."""
    url = f"/api/workflows/{workflow_id}/execute/stream"
    execution_id = ""
    async with aconnect_sse(client, "POST", url, json={}) as source:
        async for event in source.aiter_sse():
            if event.event == "start":
                execution_id = event.json()["executionId"]
            elif event.event == "node_start" and event.json()["nodeId"] == "first":
                return execution_id
    raise AssertionError("the stream ended before node 'first' started")


async def stream_items(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The stream's events as (name, data), and KEEPALIVE for each keepalive comment."""
    name: str | None = None
    data: Any = None
    async for line in response.aiter_lines():
        if line == ": keepalive":
            yield KEEPALIVE
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif not line and name is not None:
            yield name, data
            name, data = None, None


@attrs.frozen
class TwoServers:
    owner_process: trio.Process
    owner: httpx.AsyncClient  # logged in to the server that runs `execution_id`
    other: httpx.AsyncClient  # logged in to the other
    other_output: bytearray
    execution_id: str  # a run of LONG_RUN, its node `first` started


@asynccontextmanager
async def two_servers(env: dict[str, str], tmp_path: Path) -> AsyncIterator[TwoServers]:
    serve = flowtrux("serve", "--port", "0")
    async with (
        running(serve, env, tmp_path) as (owner_process, owner_url, _),
        running(serve, env, tmp_path) as (_, other_url, other_output),
        httpx.AsyncClient(base_url=owner_url, timeout=30) as owner,
        httpx.AsyncClient(base_url=other_url, timeout=30) as other,
    ):
        workflow_id = await create_workflow(owner, LONG_RUN)
        execution_id = await start_in_background(owner, workflow_id)
        await log_in(other)
        yield TwoServers(owner_process, owner, other, other_output, execution_id)


async def status_within(client: httpx.AsyncClient, execution_id: str, seconds: float) -> str:
    """The history's status once it is no longer RUNNING (fails after `seconds`)."""
    with trio.fail_after(seconds):
        while True:
            response = await client.get(f"/api/executions/{execution_id}")
            status: str = response.json()["execution"]["status"]
            if status != "RUNNING":
                return status
            await trio.sleep(0.1)


async def test_an_observer_follows_a_run_of_another_process_to_its_error_when_that_process_dies(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with two_servers(env, tmp_path) as servers:
        other, execution_id = servers.other, servers.execution_id
        items: list[tuple[str, Any]] = []
        async with other.stream("GET", f"/api/executions/{execution_id}/events") as response:
            assert response.status_code == 200
            stream = stream_items(response)
            with trio.fail_after(20):  # `first` ends and `wait` starts in the other process
                async for item in stream:
                    items.append(item)
                    if item[0] == "node_start" and item[1]["nodeId"] == "wait":
                        break
            servers.owner_process.kill()  # SIGKILL: the run's process ends nothing
            await servers.owner_process.wait()
            killed_at = len(items)
            with trio.fail_after(30):  # the lease lapses after 3 s
                items.extend([item async for item in stream])

    events = [item for item in items if item != KEEPALIVE]
    assert [name for name, _ in events] == [
        "start",
        "node_start",
        "node_complete",  # the trigger
        "node_start",
        "node_complete",  # first
        "node_start",  # wait
        "error",
    ], events
    assert events[-1][1]["error"] == INTERRUPTED
    assert KEEPALIVE in items[killed_at:]  # the stream stayed open while the run had no end
    assert b"Traceback" not in servers.other_output


async def test_stop_of_a_run_whose_process_died_ends_it_interrupted(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with two_servers(env, tmp_path) as servers:
        other, execution_id = servers.other, servers.execution_id
        servers.owner_process.kill()
        await servers.owner_process.wait()

        stop = await other.post(f"/api/executions/{execution_id}/cancel")

        assert stop.status_code == 202, stop.text
        # CANCELLING while the dead process's lease still runs, INTERRUPTED once it lapsed
        assert stop.json()["status"] in {"CANCELLING", "INTERRUPTED"}
        assert await status_within(other, execution_id, 30) == "INTERRUPTED"
        async with aconnect_sse(other, "GET", f"/api/executions/{execution_id}/events") as source:
            names = [event.event async for event in source.aiter_sse()]
        assert names[-1] == "error"
        assert sum(name in {"complete", "error", "cancelled"} for name in names) == 1
        again = await other.post(f"/api/executions/{execution_id}/cancel")
        assert again.status_code == 409, again.text
        assert "INTERRUPTED" in again.json()["error"]


async def test_stop_sent_to_another_live_process_cancels_the_run_there(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with two_servers(env, tmp_path) as servers:
        owner, other, execution_id = servers.owner, servers.other, servers.execution_id

        stop = await other.post(f"/api/executions/{execution_id}/cancel")

        assert stop.status_code == 202, stop.text
        assert stop.json() == {"executionId": execution_id, "status": "CANCELLING"}
        assert await status_within(owner, execution_id, 10) == "CANCELLED"
        execution = (await owner.get(f"/api/executions/{execution_id}")).json()["execution"]
        assert execution["error"] == "Execution cancelled by user"
