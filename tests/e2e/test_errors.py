"""Every 4xx of both execute calls is a plain JSON answer sent before any stream, and starts no
run; plus the router's own 404 and 405. Real hypercorn, over HTTP/1.1 and HTTP/2."""

import gc
import warnings
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from flowtrux.access import Role
from tests.e2e.conftest import (
    CreateWorkflow,
    Server,
    StartServer,
    assert_error,
    logged_in,
    new_client,
    wait_until_finished,
)
from tests.support import chain, delay, transform, trigger

ENDPOINTS = ["execute", "execute/stream"]
QUICK = chain(trigger(staticData={"source": "static"}), transform("echo", "{{trigger.data}}"))


def url(workflow_id: str, endpoint: str) -> str:
    return f"/api/workflows/{workflow_id}/{endpoint}"


async def run_ids(client: httpx.AsyncClient, workflow_id: str) -> list[str]:
    response = await client.get("/api/executions", params={"workflowId": workflow_id})
    assert response.status_code == 200, response.text
    return [execution["id"] for execution in response.json()["executions"]]


async def run_once(client: httpx.AsyncClient, workflow_id: str, endpoint: str) -> str:
    """Run `workflow_id` to its end through `endpoint`; its execution id."""
    if endpoint == "execute":
        response = await client.post(url(workflow_id, endpoint), json={})
        assert response.status_code == 200, response.text
        execution_id: str = response.json()["executionId"]
        return execution_id
    async with aconnect_sse(client, "POST", url(workflow_id, endpoint), json={}) as source:
        assert source.response.status_code == 200
        events = [event async for event in source.aiter_sse()]
    assert events[-1].event == "complete", events[-1]
    execution_id = events[-1].json()["executionId"]
    return execution_id


@asynccontextmanager
async def member_client(
    server: Server, http_version: str, email: str, role: Role = Role.OWNER, workspace: str = "Acme"
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client logged in as `email`, `role` in `workspace`; and that workspace's id."""
    workspace_id = await server.member(email, role, workspace)
    async with new_client(server, http_version) as client:
        yield await logged_in(client, email), workspace_id


async def create(client: httpx.AsyncClient, workspace_id: str, doc: dict[str, Any]) -> str:
    response = await client.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["workflow"]["id"]
    return workflow_id


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not JSON", b"{not json"),
    ("truncated JSON", b'{"a": '),
    ("not UTF-8", b'{"a": "\xff\xfe"}'),
    ("a JSON array", b'[{"a": 1}]'),
    ("a JSON string", b'"hello"'),
    ("a JSON number", b"42"),
    ("JSON null", b"null"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_body_that_is_not_a_json_object_is_400(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, endpoint: str
) -> None:
    workflow_id = await create_workflow(QUICK)
    for label, body in BAD_BODIES:
        response = await owner.post(
            url(workflow_id, endpoint),
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, (label, response.text)
        assert_error(response, 400, "bad_request")
    assert await run_ids(owner, workflow_id) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_body_over_the_limit_is_413(
    start_server: StartServer, http_version: str, endpoint: str
) -> None:
    server = await start_server(max_body_bytes=1024)
    async with member_client(server, http_version, "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        too_big = b'{"text": "' + b"a" * 1100 + b'"}'

        assert_error(
            await owner.post(
                url(workflow_id, endpoint),
                content=too_big,
                headers={"content-type": "application/json"},
            ),
            413,
            "payload_too_large",
        )

        assert await run_ids(owner, workflow_id) == []

        # Right at the limit is fine.
        at_limit = b'{"text": "' + b"a" * (1024 - 12) + b'"}'
        assert len(at_limit) == 1024
        response = await owner.post(url(workflow_id, "execute"), content=at_limit)
        assert response.status_code == 200, response.text
        assert len(await run_ids(owner, workflow_id)) == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_chunked_body_over_the_limit_is_413_and_cleaned_up(
    start_server: StartServer, endpoint: str
) -> None:
    server = await start_server(max_body_bytes=1024)
    # HTTP/1.1 chunked transfer coding; over HTTP/2 the same request can also hit the crash of
    # test_a_body_over_the_limit_that_is_still_arriving_is_413_and_the_server_lives_on.
    async with member_client(server, "HTTP/1.1", "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        too_big = b'{"text": "' + b"a" * 1100 + b'"}'

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for start in range(0, len(too_big), 256):
                yield too_big[start : start + 256]

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = await owner.post(
                url(workflow_id, endpoint),
                content=chunks(),
                headers={"content-type": "application/json"},
            )
            gc.collect()
            await trio.sleep(0.05)
        assert_error(response, 413, "payload_too_large")
        assert await run_ids(owner, workflow_id) == []
        leaked = [str(w.message) for w in caught if "Request.stream" in str(w.message)]
        assert leaked == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_without_a_session_it_is_401(
    server: Server,
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    http_version: str,
    endpoint: str,
) -> None:
    workflow_id = await create_workflow(QUICK)
    async with new_client(server, http_version) as anonymous:
        assert_error(
            await anonymous.post(url(workflow_id, endpoint), json={}), 401, "not_authenticated"
        )
        anonymous.cookies.set("flowtrux_session", "forged")
        assert_error(
            await anonymous.post(url(workflow_id, endpoint), json={}), 401, "not_authenticated"
        )
    assert await run_ids(owner, workflow_id) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_an_operator_may_run_a_workflow_but_a_viewer_may_not(
    server: Server,
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    http_version: str,
    endpoint: str,
) -> None:
    workflow_id = await create_workflow(QUICK)
    async with member_client(server, http_version, "viewer@example.com", Role.VIEWER) as (
        viewer,
        _,
    ):
        body = assert_error(
            await viewer.post(url(workflow_id, endpoint), json={}), 403, "forbidden"
        )
        assert "run workflows" in body["error"]
    assert await run_ids(owner, workflow_id) == []

    async with member_client(server, http_version, "operator@example.com", Role.OPERATOR) as (
        operator,
        _,
    ):
        execution_id = await run_once(operator, workflow_id, endpoint)
    assert await run_ids(owner, workflow_id) == [execution_id]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_an_unknown_workflow_is_404(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, endpoint: str
) -> None:
    workflow_id = await create_workflow(QUICK)
    body = assert_error(await owner.post(url("wf-unknown", endpoint), json={}), 404, "not_found")
    assert "wf-unknown" in body["error"]
    listed = await owner.get("/api/executions")
    assert listed.json()["executions"] == []
    assert await run_ids(owner, workflow_id) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_workflow_of_another_workspace_is_404(
    server: Server,
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    http_version: str,
    endpoint: str,
) -> None:
    workflow_id = await create_workflow(QUICK)
    async with member_client(
        server, http_version, "stranger@example.com", Role.OWNER, workspace="Elsewhere"
    ) as (stranger, _):
        theirs = await stranger.post(url(workflow_id, endpoint), json={})
        missing = await stranger.post(url("wf-unknown", endpoint), json={})
    body = assert_error(theirs, 404, "not_found")
    assert body["error"] == assert_error(missing, 404, "not_found")["error"].replace(
        "wf-unknown", workflow_id
    )  # nothing tells that it exists
    assert await run_ids(owner, workflow_id) == []


async def test_the_quota_is_shared_by_both_calls_and_answers_429_with_retry_after(
    start_server: StartServer, http_version: str
) -> None:
    server = await start_server(execute_rate="2/minute")
    async with member_client(server, http_version, "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        first = await run_once(owner, workflow_id, "execute")
        second = await run_once(owner, workflow_id, "execute/stream")

        for endpoint in ENDPOINTS:
            response = await owner.post(url(workflow_id, endpoint), json={})
            assert_error(response, 429, "too_many_requests")
            retry_after = response.headers["retry-after"]
            assert retry_after.isdigit(), retry_after
            assert 1 <= int(retry_after) <= 60
        assert await run_ids(owner, workflow_id) == [second, first]

        # The quota is per user: a colleague still has theirs.
        async with member_client(server, http_version, "editor@example.com", Role.EDITOR) as (
            editor,
            _,
        ):
            await run_once(editor, workflow_id, "execute")
        assert len(await run_ids(owner, workflow_id)) == 3


async def test_only_requests_past_the_access_check_count_against_the_quota(
    start_server: StartServer, http_version: str
) -> None:
    server = await start_server(execute_rate="2/minute")
    async with member_client(server, http_version, "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        for endpoint in ENDPOINTS * 3:  # six 404s
            response = await owner.post(url("wf-unknown", endpoint), json={})
            assert_error(response, 404, "not_found")

        await run_once(owner, workflow_id, "execute")
        await run_once(owner, workflow_id, "execute/stream")
        assert_error(
            await owner.post(url(workflow_id, "execute"), json={}), 429, "too_many_requests"
        )
        assert len(await run_ids(owner, workflow_id)) == 2


async def test_a_bad_body_past_the_access_check_does_count(
    start_server: StartServer, http_version: str
) -> None:
    """api.md: "a request counts once it has passed the access check" - whatever comes after."""
    server = await start_server(execute_rate="2/minute")
    async with member_client(server, http_version, "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        for endpoint in ENDPOINTS:
            response = await owner.post(url(workflow_id, endpoint), content=b"[1]")
            assert_error(response, 400, "bad_request")
        assert_error(
            await owner.post(url(workflow_id, "execute"), json={}), 429, "too_many_requests"
        )
        assert await run_ids(owner, workflow_id) == []


async def test_too_many_concurrent_runs_in_a_workspace_is_429(
    start_server: StartServer, http_version: str
) -> None:
    server = await start_server(max_runs_per_workspace=1)
    async with member_client(server, http_version, "owner@example.com") as (owner, space):
        slow = await create(owner, space, chain(trigger(), delay("wait", 30_000), name="Slow"))
        quick = await create(owner, space, QUICK)
        other_space = await server.member("owner@example.com", Role.OWNER, workspace="Other")
        elsewhere = await create(owner, other_space, QUICK)

        async with new_client(server, http_version) as first:
            first.cookies = owner.cookies
            async with (
                aconnect_sse(first, "POST", url(slow, "execute/stream"), json={}) as source,
                aclosing(source.aiter_sse()) as events,  # closing it closes the connection
            ):
                start = await anext(events)
                assert start.event == "start"
                running = start.json()["executionId"]

                for workflow_id in (slow, quick):
                    for endpoint in ENDPOINTS:
                        response = await owner.post(url(workflow_id, endpoint), json={})
                        assert_error(response, 429, "too_many_requests")
                        assert response.headers["retry-after"].isdigit()
                assert await run_ids(owner, slow) == [running]
                assert await run_ids(owner, quick) == []
                # The limit is per workspace: another one is not held up.
                await run_once(owner, elsewhere, "execute")

        # Closing the stream cancelled the run, which frees its slot.
        assert (await wait_until_finished(owner, running))["status"] == "CANCELLED"
        await run_once(owner, quick, "execute")


async def test_an_empty_body_is_an_empty_object(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(QUICK)

    response = await owner.post(url(workflow_id, "execute"))
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"source": "static"}

    async with owner.stream(
        "POST", url(workflow_id, "execute/stream"), headers={"content-type": "application/json"}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "text/event-stream"
        lines = [line async for line in stream.aiter_lines()]
    assert "event: complete" in lines

    for execution_id in await run_ids(owner, workflow_id):
        execution = await wait_until_finished(owner, execution_id)
        assert execution["status"] == "COMPLETED"
        trigger_log = execution["logs"][0]
        assert trigger_log["input"] == {"body": {}, "staticData": {"source": "static"}}
        assert trigger_log["output"] == {"source": "static"}


async def test_an_unknown_route_is_a_json_404(owner: httpx.AsyncClient) -> None:
    for path in ("/api/nothing-here", "/nope", "/api/workflows/wf-1/execute/now"):
        assert_error(await owner.get(path), 404, "no_route")
    assert_error(await owner.post("/api/nothing-here", json={}), 404, "no_route")


async def test_a_wrong_method_is_a_json_405(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(QUICK)
    for method, path in [
        ("GET", url(workflow_id, "execute")),
        ("GET", url(workflow_id, "execute/stream")),
        ("PUT", url(workflow_id, "execute")),
        ("DELETE", "/api/auth/login"),
        ("GET", "/api/auth/logout"),
        ("PATCH", f"/api/workflows/{workflow_id}"),
        ("DELETE", "/api/executions"),
        ("POST", "/healthz"),
    ]:
        response = await owner.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert_error(response, 405, "method_not_allowed")
        assert method not in response.headers["allow"]
    workflow_path = await owner.request("PATCH", f"/api/workflows/{workflow_id}")
    assert set(workflow_path.headers["allow"].split(", ")) >= {"GET", "PUT", "DELETE"}
    assert await run_ids(owner, workflow_id) == []


@pytest.mark.parametrize(
    "protocol",
    [
        "HTTP/1.1",
        "HTTP/2",
    ],
)
async def test_a_body_over_the_limit_that_is_still_arriving_is_413_and_the_server_lives_on(
    start_server: StartServer, protocol: str
) -> None:
    """A body larger than the HTTP/2 flow-control window (64 KiB) is still on its way when the
    413 goes out: the answer must reach the client, and the server must go on serving."""
    server = await start_server(max_body_bytes=1024)
    big = b'{"text": "' + b"a" * 200_000 + b'"}'
    async with new_client(server, protocol) as anonymous:
        response = await anonymous.post("/api/auth/login", content=big)
        assert_error(response, 413, "payload_too_large")
    async with member_client(server, protocol, "owner@example.com") as (owner, space):
        workflow_id = await create(owner, space, QUICK)
        for endpoint in ENDPOINTS:
            response = await owner.post(url(workflow_id, endpoint), content=big)
            assert_error(response, 413, "payload_too_large")
            assert response.http_version == protocol
        after = await owner.post(url(workflow_id, "execute"), json={"ok": True})
        assert after.status_code == 200, after.text
        assert after.json()["output"] == {"source": "static", "ok": True}
        assert len(await run_ids(owner, workflow_id)) == 1
    async with new_client(server, protocol) as fresh:
        assert (await fresh.get("/healthz")).status_code == 200
