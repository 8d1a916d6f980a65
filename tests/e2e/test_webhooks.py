"""Webhooks as api.md says: a bearer token made by an editor (shown once, stored hashed, the old
one voided), the three `webhookResponse` answers, 401 for a wrong or missing token, 404 for a
workflow whose trigger is not a webhook, and a per-workflow rate."""

from typing import Any

import httpx
import pytest

from flowtrux.access import Role
from tests.e2e.conftest import (
    CreateWorkflow,
    Server,
    StartServer,
    assert_error,
    logged_in,
    wait_until_finished,
)
from tests.support import chain, delay, node, response, transform, trigger


def hooked(answer: str | None = None, *, wait_ms: int = 0) -> dict[str, Any]:
    config = {"mode": "webhook"} | ({"webhookResponse": answer} if answer else {})
    start = node("trigger", "trigger", config, name="Hook")
    return chain(
        start,
        delay("wait", wait_ms),
        transform("shape", {"got": "{{trigger.data.order}}", "via": "hook"}),
    )


async def new_token(owner: httpx.AsyncClient, workflow_id: str) -> str:
    made = await owner.post(f"/api/workflows/{workflow_id}/webhook-token")
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    assert token.startswith("ftw_")
    return token


async def call(
    client: httpx.AsyncClient, workflow_id: str, token: str | None, body: Any = None
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await client.post(f"/api/webhooks/{workflow_id}", json=body or {}, headers=headers)


async def test_full_answers_as_execute_does(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, server: Server
) -> None:
    workflow_id = await create_workflow(hooked())
    token = await new_token(owner, workflow_id)
    async with httpx.AsyncClient(base_url=server.url) as caller:  # no session: the token only
        answer = await call(caller, workflow_id, token, {"order": 7})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert (run["success"], run["output"]) == (True, {"got": 7, "via": "hook"})
    assert [log["nodeId"] for log in run["logs"]] == ["trigger", "wait", "shape"]
    history = (await owner.get(f"/api/executions/{run['executionId']}")).json()["execution"]
    assert (history["trigger"], history["background"]) == ("webhook", False)


async def test_last_node_answers_its_output_alone(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(hooked("lastNode"))
    answer = await call(owner, workflow_id, await new_token(owner, workflow_id), {"order": 3})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"got": 3, "via": "hook"}


async def test_minimal_answers_at_once_and_the_run_goes_on_in_the_background(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(hooked("minimal", wait_ms=500))
    answer = await call(owner, workflow_id, await new_token(owner, workflow_id), {"order": 9})
    assert answer.status_code == 202, answer.text
    execution_id = answer.json()["executionId"]

    listed = await owner.get("/api/executions", params={"status": "RUNNING", "background": "true"})
    assert [found["id"] for found in listed.json()["executions"]] == [execution_id]
    ended = await wait_until_finished(owner, execution_id)
    assert (ended["status"], ended["background"], ended["output"]) == (
        "COMPLETED",
        True,
        {"got": 9, "via": "hook"},
    )


async def test_a_wrong_missing_old_or_unknown_token_is_401_alike(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(hooked())
    old = await new_token(owner, workflow_id)
    new = await new_token(owner, workflow_id)  # voids the old one
    refused = [
        await call(owner, workflow_id, None),
        await call(owner, workflow_id, "ftw_not-the-token"),
        await call(owner, workflow_id, old),
        await call(owner, "wf-does-not-exist", new),
    ]
    bodies = [assert_error(answer, 401, "invalid_webhook_token") for answer in refused]
    assert all(body == bodies[0] for body in bodies)
    assert all(answer.headers["www-authenticate"] == "Bearer" for answer in refused)
    assert (await call(owner, workflow_id, new)).status_code == 200
    executions = (await owner.get("/api/executions")).json()["executions"]
    assert len(executions) == 1  # no refused call started a run


async def test_a_workflow_whose_trigger_is_not_a_webhook_is_404(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("t", 1)))
    answer = await call(owner, workflow_id, await new_token(owner, workflow_id))
    assert_error(answer, 404, "not_found")


async def test_only_an_editor_makes_a_token(
    server: Server, owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(hooked())
    await server.member("op@example.com", role=Role.OPERATOR)
    async with httpx.AsyncClient(base_url=server.url) as operator:
        await logged_in(operator, "op@example.com")
        answer = await operator.post(f"/api/workflows/{workflow_id}/webhook-token")
    assert_error(answer, 403, "forbidden")


async def test_a_caller_from_another_origin_is_not_refused(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    """The token is the credential, not a cookie: there is no request to forge."""
    workflow_id = await create_workflow(hooked("lastNode"))
    token = await new_token(owner, workflow_id)
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://elsewhere.example"}
    answer = await owner.post(f"/api/webhooks/{workflow_id}", json={}, headers=headers)
    assert answer.status_code == 200, answer.text


@pytest.fixture
async def strict_server(start_server: StartServer) -> Server:
    return await start_server(webhook_rate="2/minute")


async def test_webhook_calls_count_against_the_workflows_rate(strict_server: Server) -> None:
    space = await strict_server.member("owner@example.com")
    async with httpx.AsyncClient(base_url=strict_server.url) as owner:
        await logged_in(owner, "owner@example.com")
        created = await owner.post("/api/workflows", json={"workspaceId": space, **hooked()})
        workflow_id = created.json()["workflow"]["id"]
        token = await new_token(owner, workflow_id)
        answers = [await call(owner, workflow_id, token) for _ in range(3)]
    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    body = assert_error(answers[2], 429, "too_many_requests")
    assert body["error"].startswith("This workflow's webhook has had its quota of calls")
    assert int(answers[2].headers["retry-after"]) > 0


@pytest.mark.parametrize("answer", ["full", "lastNode"])
async def test_the_response_nodes_status_is_the_answers(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, answer: str
) -> None:
    start = node("trigger", "trigger", {"mode": "webhook", "webhookResponse": answer})
    accepted = response("reply", {"queued": "{{trigger.data.order}}"})
    accepted["config"]["status"] = 201.0  # JSON Schema's integers include 201.0
    workflow_id = await create_workflow(chain(start, accepted))
    called = await call(owner, workflow_id, await new_token(owner, workflow_id), {"order": 5})
    assert called.status_code == 201, called.text
    body = called.json()
    assert (body if answer == "lastNode" else body["output"]) == {"queued": 5}
