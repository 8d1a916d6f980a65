"""Workflow CRUD, validation and permissions, against real hypercorn over HTTP/1.1 and HTTP/2."""

import copy
from typing import Any

import httpx
import pytest
import trio

from flowtrux.access import Role
from tests.e2e.conftest import CreateWorkflow, Server, assert_error, logged_in, new_client, utc
from tests.support import chain, condition, delay, edge, transform, trigger, workflow

EDITOR_DOC = workflow(
    [
        trigger(staticData={"tier": "pro"}) | {"position": {"x": 0, "y": 0}},
        transform("enrich", {"tier": "{{trigger.data.tier}}"})
        | {"position": {"x": 240, "y": 0}, "ui": {"collapsed": True, "color": "#ff8800"}},
        condition("paid", "enrich.output.tier != 'free'") | {"position": {"x": 480, "y": 0}},
        transform("yes", {"paid": True}) | {"retry": {"maxAttempts": 2, "backoffMs": 10}},
        delay("no", 1, onError="continue", timeoutMs=500),
    ],
    [
        edge("trigger", "enrich"),
        edge("enrich", "paid") | {"id": "e-1", "label": "then"},
        edge("paid", "yes", "true"),
        edge("paid", "no", "false"),
    ],
    name="Editor's workflow",
)


async def test_create_answers_201_and_echoes_the_document_exactly(
    owner: httpx.AsyncClient, workspace_id: str
) -> None:
    sent = copy.deepcopy(EDITOR_DOC)
    response = await owner.post("/api/workflows", json={"workspaceId": workspace_id, **sent})

    assert response.status_code == 201, response.text
    created = response.json()["workflow"]
    assert created["id"].startswith("wf-")
    assert created["workspaceId"] == workspace_id
    assert created["name"] == "Editor's workflow"
    assert created["nodes"] == EDITOR_DOC["nodes"]  # "position", "ui", … kept as sent
    assert created["edges"] == EDITOR_DOC["edges"]  # edge extras ("id", "label") kept too
    assert utc(created["createdAt"]) == utc(created["updatedAt"])

    fetched = await owner.get(f"/api/workflows/{created['id']}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {"workflow": created}


async def test_list_shows_only_that_workspace_newest_first(
    server: Server, owner: httpx.AsyncClient, workspace_id: str, create_workflow: CreateWorkflow
) -> None:
    other_space = await server.member("owner@example.com", Role.OWNER, workspace="Other")
    ids = []
    for n in range(3):
        ids.append(await create_workflow(chain(trigger(), name=f"Flow {n}")))
        await trio.sleep(0.002)  # timestamps have millisecond precision
    elsewhere = await owner.post(
        "/api/workflows", json={"workspaceId": other_space, **chain(trigger(), name="Elsewhere")}
    )
    assert elsewhere.status_code == 201, elsewhere.text

    response = await owner.get("/api/workflows", params={"workspaceId": workspace_id})

    assert response.status_code == 200, response.text
    listed = response.json()["workflows"]
    assert [item["id"] for item in listed] == ids[::-1]
    for item, n in zip(listed, (2, 1, 0), strict=True):
        assert set(item) >= {"id", "name", "workspaceId", "updatedAt"}
        assert (item["name"], item["workspaceId"]) == (f"Flow {n}", workspace_id)
        utc(item["updatedAt"])

    # Editing the oldest makes it the newest.
    updated = await owner.put(f"/api/workflows/{ids[0]}", json=chain(trigger(), name="Edited"))
    assert updated.status_code == 200, updated.text
    response = await owner.get("/api/workflows", params={"workspaceId": workspace_id})
    assert [item["id"] for item in response.json()["workflows"]] == [ids[0], ids[2], ids[1]]

    other = await owner.get("/api/workflows", params={"workspaceId": other_space})
    assert [item["name"] for item in other.json()["workflows"]] == ["Elsewhere"]


async def test_list_without_a_workspace_is_400(owner: httpx.AsyncClient) -> None:
    assert_error(await owner.get("/api/workflows"), 400, "bad_request")
    assert_error(await owner.get("/api/workflows?workspaceId="), 400, "bad_request")


async def test_put_replaces_the_document(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1), name="Before"))
    before = (await owner.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    doc = copy.deepcopy(EDITOR_DOC) | {"name": "After"}

    response = await owner.put(f"/api/workflows/{workflow_id}", json=doc)

    assert response.status_code == 200, response.text
    updated = response.json()["workflow"]
    assert updated["id"] == workflow_id
    assert updated["workspaceId"] == before["workspaceId"]
    assert (updated["name"], updated["nodes"], updated["edges"]) == (
        "After",
        EDITOR_DOC["nodes"],
        EDITOR_DOC["edges"],
    )
    assert updated["createdAt"] == before["createdAt"]
    assert utc(updated["updatedAt"]) > utc(before["updatedAt"])
    fetched = await owner.get(f"/api/workflows/{workflow_id}")
    assert fetched.json() == {"workflow": updated}


async def test_put_of_an_invalid_document_is_422_and_changes_nothing(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1)))
    before = (await owner.get(f"/api/workflows/{workflow_id}")).json()

    response = await owner.put(f"/api/workflows/{workflow_id}", json=chain(delay("d", 5)))

    body = assert_error(response, 422, "invalid_workflow")
    assert body["problems"]
    assert (await owner.get(f"/api/workflows/{workflow_id}")).json() == before


async def test_delete_answers_204_and_the_workflow_is_gone(
    owner: httpx.AsyncClient, workspace_id: str, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1)))
    kept = await create_workflow(chain(trigger(), name="Kept"))

    response = await owner.delete(f"/api/workflows/{workflow_id}")

    assert response.status_code == 204, response.text
    assert response.content == b""
    url = f"/api/workflows/{workflow_id}"
    assert_error(await owner.get(url), 404, "not_found")
    assert_error(await owner.put(url, json=chain(trigger())), 404, "not_found")
    assert_error(await owner.delete(url), 404, "not_found")
    assert_error(await owner.post(f"{url}/execute", json={}), 404, "not_found")
    listed = await owner.get("/api/workflows", params={"workspaceId": workspace_id})
    assert [item["id"] for item in listed.json()["workflows"]] == [kept]


SEVERAL_PROBLEMS = workflow(
    [
        trigger(),
        trigger() | {"id": "trigger-2"},  # a second trigger
        {"id": "wait", "type": "delay", "name": "Wait", "config": {}},  # no "ms"
        transform("ok", 1),
    ],
    [
        edge("trigger", "ok"),
        edge("ok", "ghost"),  # no such node
        edge("trigger", "wait"),
    ],
)


async def test_an_invalid_workflow_is_422_with_every_problem(
    owner: httpx.AsyncClient, workspace_id: str
) -> None:
    response = await owner.post(
        "/api/workflows", json={"workspaceId": workspace_id, **SEVERAL_PROBLEMS}
    )

    body = assert_error(response, 422, "invalid_workflow")
    problems = body["problems"]
    for problem in problems:
        assert set(problem) >= {"path", "message"}
        assert isinstance(problem["path"], str)
        assert isinstance(problem["message"], str)
        assert problem["message"]
    paths = {problem["path"]: problem["message"] for problem in problems}
    assert "trigger" in paths["nodes"]  # exactly one trigger, found 2
    assert "ms" in paths["nodes[2].config"]
    assert "ghost" in paths["edges[1].target"]
    assert len(problems) == 3
    assert "3 problems" in body["error"]
    listed = await owner.get("/api/workflows", params={"workspaceId": workspace_id})
    assert listed.json()["workflows"] == []  # nothing was stored


@pytest.mark.parametrize(
    ("doc", "expected_paths"),
    [
        pytest.param(
            workflow(
                [trigger(), {"id": "wait", "type": "delay", "name": "Wait", "config": {}}],
                [],
            ),
            {"nodes[1].config", "nodes[1]"},  # no "ms"; and "wait" cannot be reached
            id="config-and-unreachable",
        ),
        pytest.param(
            workflow([trigger(), trigger() | {"id": "trigger-2"}], [edge("trigger", "trigger-2")])
            | {"name": ""},
            {"name", "nodes"},  # an empty name; and two triggers
            id="empty-name-and-two-triggers",
        ),
    ],
)
async def test_every_problem_is_listed_even_across_kinds(
    owner: httpx.AsyncClient, workspace_id: str, doc: dict[str, Any], expected_paths: set[str]
) -> None:
    response = await owner.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
    body = assert_error(response, 422, "invalid_workflow")
    assert {problem["path"] for problem in body["problems"]} >= expected_paths


async def test_create_needs_a_workspace_and_an_object(
    owner: httpx.AsyncClient, workspace_id: str
) -> None:
    assert_error(await owner.post("/api/workflows", json=chain(trigger())), 400, "bad_request")
    assert_error(await owner.post("/api/workflows", json=[1]), 400, "bad_request")
    response = await owner.post(
        "/api/workflows", json={"workspaceId": "ws-does-not-exist", **chain(trigger())}
    )
    assert_error(response, 404, "not_found")


ROLE_CAN_EDIT = {Role.OWNER: True, Role.EDITOR: True, Role.OPERATOR: False, Role.VIEWER: False}


@pytest.mark.parametrize("role", list(Role))
async def test_who_may_read_and_who_may_change_a_workflow(
    server: Server,
    http_version: str,
    workspace_id: str,
    create_workflow: CreateWorkflow,
    role: Role,
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1), name="Original"))
    await server.member("member@example.com", role)
    url = f"/api/workflows/{workflow_id}"
    async with new_client(server, http_version) as member:
        await logged_in(member, "member@example.com")

        got = await member.get(url)
        assert got.status_code == 200, got.text
        assert got.json()["workflow"]["name"] == "Original"
        listed = await member.get("/api/workflows", params={"workspaceId": workspace_id})
        assert [item["id"] for item in listed.json()["workflows"]] == [workflow_id]

        created = await member.post(
            "/api/workflows", json={"workspaceId": workspace_id, **chain(trigger(), name="New")}
        )
        put = await member.put(url, json=chain(trigger(), name="Changed"))
        name_now = (await member.get(url)).json()["workflow"]["name"]
        deleted = await member.delete(url)

        if ROLE_CAN_EDIT[role]:
            assert (created.status_code, put.status_code, deleted.status_code) == (201, 200, 204)
            assert name_now == "Changed"
            assert (await member.get(url)).status_code == 404
        else:
            for response in (created, put, deleted):
                assert_error(response, 403, "forbidden")
            assert name_now == "Original"
            assert (await member.get(url)).status_code == 200
            listed = await member.get("/api/workflows", params={"workspaceId": workspace_id})
            assert [item["id"] for item in listed.json()["workflows"]] == [workflow_id]


async def test_a_non_member_cannot_tell_the_workflow_exists(
    server: Server,
    owner: httpx.AsyncClient,
    http_version: str,
    workspace_id: str,
    create_workflow: CreateWorkflow,
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("a", 1), name="Secret"))
    await server.member("stranger@example.com", Role.OWNER, workspace="Stranger's")
    async with new_client(server, http_version) as stranger:
        await logged_in(stranger, "stranger@example.com")

        def same_as_missing(response: httpx.Response, missing: httpx.Response) -> None:
            body = assert_error(response, 404, "not_found")
            missing_body = assert_error(missing, 404, "not_found")
            assert body["error"] == missing_body["error"].replace("wf-missing", workflow_id)

        url, missing_url = f"/api/workflows/{workflow_id}", "/api/workflows/wf-missing"
        doc = chain(trigger(), name="Hijacked")
        same_as_missing(await stranger.get(url), await stranger.get(missing_url))
        same_as_missing(
            await stranger.put(url, json=doc), await stranger.put(missing_url, json=doc)
        )
        same_as_missing(await stranger.delete(url), await stranger.delete(missing_url))
        for suffix in ("/execute", "/execute/stream"):
            same_as_missing(
                await stranger.post(url + suffix, json={}),
                await stranger.post(missing_url + suffix, json={}),
            )
        listing = await stranger.get("/api/workflows", params={"workspaceId": workspace_id})
        missing_listing = await stranger.get("/api/workflows", params={"workspaceId": "ws-none"})
        assert_error(listing, 404, "not_found")
        assert listing.json()["error"] == missing_listing.json()["error"].replace(
            "ws-none", workspace_id
        )
        creating = await stranger.post(
            "/api/workflows", json={"workspaceId": workspace_id, **chain(trigger())}
        )
        assert_error(creating, 404, "not_found")

    # Nothing happened to it.
    got = await owner.get(f"/api/workflows/{workflow_id}")
    assert got.json()["workflow"]["name"] == "Secret"
    runs = await owner.get("/api/executions", params={"workflowId": workflow_id})
    assert runs.json()["executions"] == []
    listed = await owner.get("/api/workflows", params={"workspaceId": workspace_id})
    assert len(listed.json()["workflows"]) == 1
