"""What a careless or hostile server (or workflow) may throw at the `http` node, and the clean
result each must give: never an "unexpected error", never a run broken by one answer, never a
secret in the history, never more read than a node may output."""

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from tests.e2e.conftest import CreateWorkflow
from tests.e2e.reaching_out.runs import execute, log_of
from tests.outbound.listener import Listener, answer, listening
from tests.outside.target import Target
from tests.support import chain, delay, http, transform, trigger

MIB = 1024 * 1024


@pytest.fixture
async def remote() -> AsyncIterator[Listener]:
    async with listening() as listener:
        yield listener


async def call(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, config: dict[str, Any], **node: Any
) -> dict[str, Any]:
    """Run `trigger -> call -> after` (`after` copies the call's output): a failing call with
    `onError: continue` must not break the run."""
    doc = chain(
        trigger(),
        http("call", config, **node),
        transform("after", {"got": "{{call.output}}"}),
    )
    return await execute(owner, await create_workflow(doc))


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        ("utf-7", b"+2AA-", "?"),  # a lone surrogate, which no store can hold
        ("rot13", "café".encode(), "café"),  # not a text encoding: read as UTF-8
        ("no-such-charset", b"plain", "plain"),
        ("latin-1", "café".encode("latin-1"), "café"),
    ],
)
async def test_text_in_any_charset_is_storable_text(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    remote: Listener,
    charset: str,
    body: bytes,
    text: str,
) -> None:
    remote.answer = answer("200 OK", {"Content-Type": f"text/plain; charset={charset}"}, body)
    run = await call(owner, create_workflow, {"url": remote.url})
    assert run["success"] is True, run
    assert log_of(run, "call")["output"]["body"] == text


async def test_a_head_of_a_large_resource_is_not_a_large_answer(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, remote: Listener
) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(20 * MIB)}
    remote.answer = answer("200 OK", headers, b"", length=False)
    run = await call(owner, create_workflow, {"method": "HEAD", "url": remote.url})
    assert run["success"] is True, run
    assert log_of(run, "call")["output"]["body"] is None


async def test_a_header_that_cannot_be_sent_fails_without_showing_its_value(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, remote: Listener
) -> None:
    secret = "sk-live-9f\n8e7d6c5b4a"
    config = {"url": remote.url, "headers": {"Authorization": f"Bearer {secret}"}}
    run = await call(owner, create_workflow, config, retry={"maxAttempts": 3})
    log = log_of(run, "call")
    assert log["error"].startswith("the header 'authorization' holds a control character")
    assert log["attempt"] == 1
    assert "sk-live" not in json.dumps(run)
    assert remote.connections == 0


async def test_a_key_in_the_urls_user_name_is_redacted(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    key = "sk-live-9f8e7d6c5b4a"
    url = f"http://{key}:@{target.url.removeprefix('http://')}/json"
    run = await call(owner, create_workflow, {"url": url})
    assert target.requests[0].headers["authorization"].startswith("Basic ")
    assert key not in json.dumps(run)
    assert log_of(run, "call")["externalRequests"][0]["url"].startswith("http://%5Bredacted%5D@")


@pytest.mark.parametrize("host", ["127.0.0.1..", f"{'a' * 64}.example"])
async def test_a_host_name_no_resolver_takes_is_a_clear_error(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, host: str
) -> None:
    run = await call(owner, create_workflow, {"url": f"http://{host}/"}, onError="continue")
    error = log_of(run, "call")["error"]
    assert "unexpected" not in error
    assert "not valid" in error
    assert run["success"] is True  # onError: continue, and the run went on


async def test_no_more_is_read_than_a_node_may_output_and_that_is_not_retried(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    """maxResponseBytes may say 1 GiB: past the output limit (4 MiB) the node fails anyway."""
    url = f"{target.url}/huge?bytes={64 * MIB}&length=no&rid=big"
    config = {"url": url, "maxResponseBytes": 1024 * MIB}
    run = await call(owner, create_workflow, config, retry={"maxAttempts": 3})
    log = log_of(run, "call")
    assert log["error"].startswith(
        "the response is larger than 4,194,304 bytes (FLOWTRUX_MAX_OUTPUT_BYTES"
    )
    assert log["attempt"] == 1
    assert [sent["status"] for sent in log["externalRequests"]] == [200]
    assert len(target.requests) == 1


async def test_attempts_that_got_no_answer_are_listed(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    config = {"url": f"{target.url}/slow?ms=5000", "timeoutMs": 200}
    run = await call(owner, create_workflow, config, retry={"maxAttempts": 2})
    requests = log_of(run, "call")["externalRequests"]
    assert [(sent["status"], sent["bytes"]) for sent in requests] == [(None, 0), (None, 0)]
    assert all(sent["durationMs"] >= 190 for sent in requests)


async def test_a_stop_does_not_wait_for_a_large_answer_to_be_parsed(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, remote: Listener
) -> None:
    """Four MiB of `[{},{},…]` take seconds to parse and check: the Stop ends the run long
    before (0.24-0.51 s measured here, most of it the C parser's hold of the GIL, 0.17 s; it
    took 0.7-4.7 s while the checks ran in a thread and the event loop waited up to 5 ms for
    the GIL at each turn)."""
    items = (4 * MIB - 2) // 3
    body = b"[" + b",".join([b"{}"] * items) + b"]"
    remote.answer = answer("200 OK", {"Content-Type": "application/json"}, body)
    workflow_id = await create_workflow(
        chain(trigger(), http("call", {"url": remote.url}), delay("after", 30_000))
    )
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with (
        aconnect_sse(owner, "POST", url, json={}) as source,
        aclosing(source.aiter_sse()) as events,
    ):
        execution_id = (await anext(events)).json()["executionId"]
        await remote.answered.wait()
        await trio.sleep(0.1)  # the answer is being parsed
        pressed = trio.current_time()
        assert (await owner.post(f"/api/executions/{execution_id}/cancel")).status_code == 202
        rest = [event async for event in events]
        ended = trio.current_time()
    assert rest[-1].event == "cancelled"
    stopped = [event.json() for event in rest if event.event == "node_complete"][-1]
    assert (stopped["nodeId"], stopped["status"]) == ("call", "cancelled")
    assert ended - pressed < 1
