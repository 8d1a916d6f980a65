"""SIGKILL of the server with runs in flight and streams open: a process started later on the
same store ends every run INTERRUPTED (with an `error` event) within the lease, and every event
a client had received before the kill is in the store."""

import hashlib
import hmac
import json
from pathlib import Path

import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.e2e.processes import create_workflow, flowtrux, log_in, running, server_env
from tests.e2e.reaching_out.runs import until
from tests.outside.target import Target
from tests.support import chain, delay, node, trigger

STREAMS = 4
LEASE_S = "3"  # so that the test does not wait the default 30 s


async def watch(url: str, cookies: httpx.Cookies, workflow_id: str, got: list[ServerSentEvent],
                started: trio.Event) -> None:  # fmt: skip
    """Stream a run, keeping what arrives, until the connection breaks."""
    stream_url = f"/api/workflows/{workflow_id}/execute/stream"
    try:
        async with (
            httpx.AsyncClient(base_url=url, cookies=cookies, timeout=30) as client,
            aconnect_sse(client, "POST", stream_url, json={}) as source,
        ):
            async for event in source.aiter_sse():
                got.append(event)
                if event.event == "node_start" and event.json()["nodeId"] == "long":
                    started.set()
    except httpx.HTTPError:
        pass  # the server was killed


async def test_after_sigkill_every_run_ends_interrupted_with_every_event_it_sent(
    tmp_path: Path,
) -> None:
    env = await server_env(tmp_path, lease_s=LEASE_S)
    serve = flowtrux("serve", "--port", "0")
    streams: list[list[ServerSentEvent]] = [[] for _ in range(STREAMS)]
    async with (
        running(serve, env, tmp_path) as (process, url, _),
        httpx.AsyncClient(base_url=url) as owner,
        trio.open_nursery() as nursery,
    ):
        workflow_id = await create_workflow(
            owner, chain(trigger(), delay("short", 50), delay("long", 60_000))
        )
        for got in streams:
            started = trio.Event()
            nursery.start_soon(watch, url, owner.cookies, workflow_id, got, started)
            with trio.fail_after(10):
                await started.wait()
        process.kill()  # SIGKILL: it ends nothing, stores nothing more
        await process.wait()

    execution_ids = [got[0].json()["executionId"] for got in streams]
    async with (
        running(serve, env, tmp_path) as (_, later_url, _),
        httpx.AsyncClient(base_url=later_url, timeout=30) as later,
    ):
        await log_in(later)
        with trio.fail_after(30):
            for execution_id in execution_ids:
                while True:
                    answer = await later.get(f"/api/executions/{execution_id}")
                    if answer.json()["execution"]["status"] != "RUNNING":
                        break
                    await trio.sleep(0.2)
        for execution_id, got in zip(execution_ids, streams, strict=True):
            history = (await later.get(f"/api/executions/{execution_id}")).json()["execution"]
            assert history["status"] == "INTERRUPTED"
            url = f"/api/executions/{execution_id}/events"
            async with aconnect_sse(later, "GET", url, headers={"Last-Event-ID": "0"}) as source:
                stored = [(e.id, e.event, e.data) async for e in source.aiter_sse()]
            received = [(e.id, e.event, e.data) for e in got]
            assert stored[: len(received)] == received  # all a client saw is stored
            assert [name for _, name, _ in stored[len(received) :]] == ["error"]


async def test_a_background_run_whose_process_died_calls_back_once_interrupted(
    tmp_path: Path, target: Target
) -> None:
    """The process that ends it INTERRUPTED sends its callback: nothing waits in vain."""
    secret = "crash-callback-secret"
    env = await server_env(
        tmp_path, lease_s=LEASE_S, callback_secret=secret, http_allow_cidrs="127.0.0.1/32"
    )
    serve = flowtrux("serve", "--port", "0")
    start = node("trigger", "trigger",
                 {"continueOnDisconnect": True, "callbackUrl": f"{target.url}/json"})  # fmt: skip
    async with (
        running(serve, env, tmp_path) as (process, url, _),
        httpx.AsyncClient(base_url=url) as owner,
    ):
        workflow_id = await create_workflow(owner, chain(start, delay("long", 60_000)))
        stream_url = f"/api/workflows/{workflow_id}/execute/stream"
        async with aconnect_sse(owner, "POST", stream_url, json={}) as source:
            execution_id = (await anext(source.aiter_sse())).json()["executionId"]
        # The caller left: the run goes on in the background, until its process is killed.
        await trio.sleep(0.3)
        process.kill()
        await process.wait()

    async with running(serve, env, tmp_path):
        await until(lambda: bool(target.requests), 30)
    [sent] = target.requests
    expected = "sha256=" + hmac.new(secret.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["x-flowtrux-signature"] == expected
    payload = json.loads(sent.body)
    assert (payload["executionId"], payload["success"]) == (execution_id, False)
    assert payload["error"] == "Execution interrupted: the process running it stopped"
