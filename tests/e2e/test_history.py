"""Execution history and the service probes, against real hypercorn over HTTP/1.1 and HTTP/2."""

from typing import Any

import httpx
import pytest
import trio

from flowtrux.access import Role
from tests.e2e.conftest import CreateWorkflow, Server, assert_error, logged_in, new_client, utc
from tests.support import chain, condition, edge, fail, transform, trigger, workflow

SUMMARY_FIELDS = {
    "id",
    "workflowId",
    "status",
    "trigger",
    "background",
    "startedAt",
    "finishedAt",
    "durationMs",
    "error",
}
LOG_FIELDS = {
    "nodeId",
    "nodeName",
    "nodeType",
    "status",
    "input",
    "output",
    "error",
    "startedAt",
    "endedAt",
    "durationMs",
    "attempt",
}

BRANCHY = workflow(
    [
        trigger(staticData={"tier": "pro"}),
        condition("big", "trigger.data.amount > 100"),
        transform("review", {"queue": "review", "amount": "{{trigger.data.amount}}"}),
        transform("approve", {"queue": "auto", "tier": "{{trigger.data.tier}}"}),
    ],
    [edge("trigger", "big"), edge("big", "review", "true"), edge("big", "approve", "false")],
    name="Branchy",
)
FAILING = chain(trigger(), fail("boom", "card {{trigger.data.card}} declined"), name="Failing")


async def run(client: httpx.AsyncClient, workflow_id: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/api/workflows/{workflow_id}/execute", json=body)
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["executionId"]
    await trio.sleep(0.002)  # timestamps have millisecond precision: keep "newest first" defined
    return execution_id


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/executions", params=params)
    assert response.status_code == 200, response.text
    executions: list[dict[str, Any]] = response.json()["executions"]
    return executions


async def test_the_list_is_newest_first_with_the_fields_of_api_md(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    branchy, failing = await create_workflow(BRANCHY), await create_workflow(FAILING)
    first = await run(owner, branchy, {"amount": 500})
    second = await run(owner, failing, {"card": "4242"})
    third = await run(owner, branchy, {"amount": 5})

    executions = await listed(owner)

    assert [e["id"] for e in executions] == [third, second, first]
    for execution in executions:
        assert set(execution) >= SUMMARY_FIELDS
        assert execution["id"].startswith("exec-")
        assert execution["trigger"] == "manual"
        assert execution["background"] is False
        started, finished = utc(execution["startedAt"]), utc(execution["finishedAt"])
        assert started <= finished
        assert isinstance(execution["durationMs"], int)
        assert 0 <= execution["durationMs"] <= (finished - started).total_seconds() * 1000 + 1
    started_at = [utc(e["startedAt"]) for e in executions]
    assert started_at == sorted(started_at, reverse=True)
    by_id = {e["id"]: e for e in executions}
    assert (by_id[first]["workflowId"], by_id[first]["status"]) == (branchy, "COMPLETED")
    assert by_id[first]["error"] is None
    assert (by_id[second]["workflowId"], by_id[second]["status"]) == (failing, "FAILED")
    assert "card 4242 declined" in by_id[second]["error"]


async def test_filters_by_workflow_status_and_limit(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    branchy, failing = await create_workflow(BRANCHY), await create_workflow(FAILING)
    ok_1 = await run(owner, branchy, {"amount": 1})
    bad_1 = await run(owner, failing, {"card": "1"})
    ok_2 = await run(owner, branchy, {"amount": 2})
    bad_2 = await run(owner, failing, {"card": "2"})

    assert [e["id"] for e in await listed(owner, workflowId=branchy)] == [ok_2, ok_1]
    assert [e["id"] for e in await listed(owner, workflowId=failing)] == [bad_2, bad_1]
    assert [e["id"] for e in await listed(owner, status="COMPLETED")] == [ok_2, ok_1]
    assert [e["id"] for e in await listed(owner, status="FAILED")] == [bad_2, bad_1]
    assert await listed(owner, status="FAILED", workflowId=branchy) == []
    assert await listed(owner, status="RUNNING") == []
    assert await listed(owner, status="CANCELLED") == []
    assert [e["id"] for e in await listed(owner, limit=1)] == [bad_2]
    assert [e["id"] for e in await listed(owner, limit=3, status="COMPLETED")] == [ok_2, ok_1]
    assert len(await listed(owner, limit=200)) == 4
    assert len(await listed(owner, background="false")) == 4
    assert await listed(owner, background="true") == []


async def test_before_gives_the_next_page_without_overlap(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    branchy = await create_workflow(BRANCHY)
    ids = [await run(owner, branchy, {"amount": n}) for n in range(5)]
    newest_first = ids[::-1]

    pages: list[list[str]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"before": before} if before else {})
        page = [e["id"] for e in await listed(owner, **params)]
        if not page:
            break
        pages.append(page)
        before = page[-1]

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert [e["id"] for e in await listed(owner, before=ids[2])] == [ids[1], ids[0]]
    assert [e["id"] for e in await listed(owner, before=ids[2], limit=1)] == [ids[1]]
    assert await listed(owner, before=ids[0]) == []


@pytest.mark.parametrize(
    "params",
    [
        {"status": "DONE"},
        {"status": "finished"},
        {"status": ""},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "2.5"},
        {"background": "yes"},
    ],
    ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()),
)
async def test_an_invalid_filter_is_400(owner: httpx.AsyncClient, params: dict[str, str]) -> None:
    body = assert_error(await owner.get("/api/executions", params=params), 400, "bad_request")
    (name,) = params
    assert f"'{name}'" in body["error"]  # the message says which parameter is wrong


async def test_the_history_needs_a_session(server: Server, http_version: str) -> None:
    async with new_client(server, http_version) as anonymous:
        assert_error(await anonymous.get("/api/executions"), 401, "not_authenticated")
        assert_error(await anonymous.get("/api/executions/exec-x"), 401, "not_authenticated")


async def test_executions_of_other_workspaces_are_invisible(
    server: Server, owner: httpx.AsyncClient, http_version: str, create_workflow: CreateWorkflow
) -> None:
    branchy = await create_workflow(BRANCHY)
    mine = await run(owner, branchy, {"amount": 7})
    stranger_space = await server.member("stranger@example.com", Role.OWNER, workspace="Other")
    async with new_client(server, http_version) as stranger:
        await logged_in(stranger, "stranger@example.com")
        response = await stranger.post(
            "/api/workflows", json={"workspaceId": stranger_space, **FAILING}
        )
        theirs = await run(stranger, response.json()["workflow"]["id"], {"card": "9"})

        assert [e["id"] for e in await listed(stranger)] == [theirs]
        assert await listed(stranger, workflowId=branchy) == []
        assert await listed(stranger, before=mine) == []
        hidden = assert_error(await stranger.get(f"/api/executions/{mine}"), 404, "not_found")
        missing = assert_error(await stranger.get("/api/executions/exec-nope"), 404, "not_found")
        assert hidden["error"] == missing["error"].replace("exec-nope", mine)

    assert [e["id"] for e in await listed(owner)] == [mine]
    assert_error(await owner.get(f"/api/executions/{theirs}"), 404, "not_found")


async def test_a_viewer_sees_the_history_of_the_workspace(
    server: Server, owner: httpx.AsyncClient, http_version: str, create_workflow: CreateWorkflow
) -> None:
    branchy = await create_workflow(BRANCHY)
    execution_id = await run(owner, branchy, {"amount": 7})
    await server.member("viewer@example.com", Role.VIEWER)
    async with new_client(server, http_version) as viewer:
        await logged_in(viewer, "viewer@example.com")
        assert [e["id"] for e in await listed(viewer)] == [execution_id]
        response = await viewer.get(f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        assert response.json()["execution"]["id"] == execution_id


async def test_one_execution_has_trigger_data_output_and_every_nodes_log(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    branchy = await create_workflow(BRANCHY)
    execution_id = await run(owner, branchy, {"amount": 500})

    response = await owner.get(f"/api/executions/{execution_id}")

    assert response.status_code == 200, response.text
    execution = response.json()["execution"]
    (summary,) = await listed(owner)
    assert {key: execution[key] for key in summary} == summary
    assert execution["status"] == "COMPLETED"
    # triggerData is what {{trigger.data}} read: the body merged over staticData.
    assert execution["triggerData"] == {"tier": "pro", "amount": 500}
    assert execution["output"] == {"queue": "review", "amount": 500}

    logs = {log["nodeId"]: log for log in execution["logs"]}
    assert len(execution["logs"]) == 4  # the skipped node's log is kept too
    for log in execution["logs"]:
        assert set(log) >= LOG_FIELDS, log["nodeId"]
    assert {node_id: log["status"] for node_id, log in logs.items()} == {
        "trigger": "success",
        "big": "success",
        "review": "success",
        "approve": "skipped",
    }
    for node_id in ("trigger", "big", "review"):
        log = logs[node_id]
        assert utc(log["startedAt"]) <= utc(log["endedAt"])
        assert isinstance(log["durationMs"], int)
        assert log["error"] is None
        assert log["attempt"] >= 1
    assert utc(execution["startedAt"]) <= utc(logs["trigger"]["startedAt"])
    assert utc(logs["review"]["endedAt"]) <= utc(execution["finishedAt"])

    trigger_log = logs["trigger"]
    assert (trigger_log["nodeName"], trigger_log["nodeType"]) == ("Start", "trigger")
    assert trigger_log["input"] == {"body": {"amount": 500}, "staticData": {"tier": "pro"}}
    assert trigger_log["output"] == {"tier": "pro", "amount": 500}
    big = logs["big"]
    assert (big["nodeType"], big["output"]) == ("condition", True)
    assert big["input"] == {"trigger": {"tier": "pro", "amount": 500}}
    assert big["condition"] == "trigger.data.amount > 100"
    assert big["variables"] == {"trigger.data.amount": 500}
    assert logs["review"]["input"] == {"big": True}
    skipped = logs["approve"]
    assert (skipped["nodeName"], skipped["nodeType"]) == ("Make approve", "transform")
    assert skipped["output"] is None
    assert skipped["error"] is None


async def test_a_failed_execution_keeps_the_error_and_the_failing_nodes_log(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    failing = await create_workflow(FAILING)
    execution_id = await run(owner, failing, {"card": "4000"})

    execution = (await owner.get(f"/api/executions/{execution_id}")).json()["execution"]

    assert execution["status"] == "FAILED"
    assert "card 4000 declined" in execution["error"]
    assert [(log["nodeId"], log["status"]) for log in execution["logs"]] == [
        ("trigger", "success"),
        ("boom", "error"),
    ]
    boom = execution["logs"][1]
    assert "card 4000 declined" in boom["error"]
    assert set(boom) >= LOG_FIELDS
    utc(boom["startedAt"])
    utc(boom["endedAt"])


async def test_an_unknown_execution_is_404(owner: httpx.AsyncClient) -> None:
    body = assert_error(await owner.get("/api/executions/exec-nope"), 404, "not_found")
    assert "exec-nope" in body["error"]


async def test_healthz_and_readyz_answer_200_in_json(
    server: Server, client: httpx.AsyncClient
) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)  # no session needed
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert isinstance(body, dict)
        assert body.get("status") in {"ok", "ready"}
