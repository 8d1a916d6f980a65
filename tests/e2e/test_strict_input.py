"""The door: request bodies are strict JSON and numbers in parameters are bounded. Whatever is
refused is a 400 that names the problem, and writes nothing; whatever passes can be stored,
streamed and read back. Real hypercorn, over HTTP/1.1 and HTTP/2."""

import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.e2e.conftest import CreateWorkflow, assert_error, wait_until_finished
from tests.support import chain, delay, transform, trigger


def nested(depth: int) -> str:
    """A JSON object whose value is nested `depth` levels deep in all (the object counts)."""
    return '{"deep": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


# (what is wrong, the body, a phrase the 400 must contain)
NOT_STRICT: list[tuple[str, str, str]] = [
    ("NaN", '{"x": NaN}', "NaN"),
    ("Infinity", '{"x": Infinity}', "Infinity"),
    ("-Infinity", '{"x": [1, -Infinity]}', "-Infinity"),
    ("a float past a double", '{"x": 1e999}', "does not fit a double"),
    ("an integer past a double", '{"x": 1' + "0" * 400 + "}", "does not fit a double"),
    ("an integer of 309 digits past a double", '{"x": 2' + "0" * 308 + "}", "fit a double"),
    ("an integer of 5,000 digits", '{"x": ' + "9" * 5000 + "}", "does not fit a double"),
    ("a lone high surrogate", '{"x": "a\\ud800b"}', "lone UTF-16 surrogate"),
    ("a lone low surrogate in a key", '{"\\udc00": 1}', "lone UTF-16 surrogate"),
    ("nesting of 65", nested(65), "nested deeper than 64"),
    ("nesting of 490", nested(490), "nested deeper than 64"),
    ("nesting of 3,000", nested(3000), "nested deeper than 64"),
    ("nesting of 100,000", nested(100_000), "nested deeper than 64"),
]


async def post_raw(client: httpx.AsyncClient, path: str, body: str) -> httpx.Response:
    return await client.post(
        path, content=body.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("endpoint", ["execute", "execute/stream"])
async def test_a_body_that_is_not_strict_json_is_400_and_starts_no_run(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, endpoint: str
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("echo", "{{trigger.data}}")))
    for label, body, phrase in NOT_STRICT:
        response = await post_raw(owner, f"/api/workflows/{workflow_id}/{endpoint}", body)
        error = assert_error(response, 400, "bad_request")["error"]
        assert phrase in error, (label, error)
        assert len(error) < 300, label  # a sentence, not the body echoed back
    listed = await owner.get("/api/executions", params={"workflowId": workflow_id})
    assert listed.json()["executions"] == []


QUIET = chain(
    trigger(staticData={"value": "PLACEHOLDER"}), transform("echo", {"out": "PLACEHOLDER"})
)


async def test_a_workflow_that_is_not_strict_json_is_400_and_not_written(
    owner: httpx.AsyncClient, workspace_id: str
) -> None:
    created = await owner.post("/api/workflows", json={"workspaceId": workspace_id, **QUIET})
    workflow_id = created.json()["workflow"]["id"]
    document = json.dumps({"workspaceId": workspace_id, **QUIET})
    for label, value, phrase in [
        ("NaN in staticData", "NaN", "NaN"),
        ("a lone surrogate in an output", '"\\ud800"', "surrogate"),
        ("1e999 in an output", "1e999", "double"),
        ("an integer of 5,000 digits in an output", "9" * 5000, "does not fit a double"),
    ]:
        body = document.replace('"PLACEHOLDER"', value)
        for response in (
            await post_raw(owner, "/api/workflows", body),
            await owner.put(
                f"/api/workflows/{workflow_id}",
                content=body.encode(),
                headers={"content-type": "application/json"},
            ),
        ):
            assert phrase in assert_error(response, 400, "bad_request")["error"], label
    listed = await owner.get("/api/workflows", params={"workspaceId": workspace_id})
    assert [w["id"] for w in listed.json()["workflows"]] == [workflow_id]
    stored = (await owner.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert stored["nodes"] == QUIET["nodes"]  # the PUTs changed nothing


async def test_a_login_body_with_an_integer_of_5000_digits_is_400(
    client: httpx.AsyncClient,
) -> None:
    """No session needed: Python's int() refuses more than 4,300 digits with a plain ValueError,
    which must never reach the caller as a 500."""
    body = '{"email": ' + "9" * 5000 + ', "password": "x"}'
    response = await post_raw(client, "/api/auth/login", body)
    assert "does not fit a double" in assert_error(response, 400, "bad_request")["error"]


async def test_what_the_door_lets_in_is_stored_streamed_and_read_back(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), transform("echo", "{{trigger.data}}")))
    body = (
        '{"emoji": "\\ud83d\\ude00 \u00e9", "big": 1e308, "int": 9007199254740993,'
        ' "tiny": 1e-400, "deep": ' + "[" * 62 + "]" * 62 + "}"
    )  # a surrogate pair, the largest doubles, an underflow, and nesting of exactly 64
    expected: dict[str, Any] = json.loads(body)
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with aconnect_sse(owner, "POST", url, content=body.encode()) as source:
        events = [event async for event in source.aiter_sse()]
    assert events[-1].event == "complete"
    assert events[-1].json()["output"] == expected
    execution = await wait_until_finished(owner, events[0].json()["executionId"])
    assert execution["output"] == expected
    assert execution["triggerData"] == expected


BAD_NUMBERS = ["²", "٣", "1" * 5000, "9" * 20, "-1", "1.5", "1e3", "0x10"]


async def test_last_event_id_must_be_a_bounded_whole_number(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(chain(trigger(), delay("wait", 0)))
    done = (await owner.post(f"/api/workflows/{workflow_id}/execute", json={})).json()
    url = f"/api/executions/{done['executionId']}/events"
    for value in BAD_NUMBERS:
        header = value.encode("latin-1" if value.isascii() or value == "²" else "utf-8")
        by_header = await owner.get(url, headers=[(b"Last-Event-ID", header)])
        assert "Last-Event-ID" in assert_error(by_header, 400, "bad_request")["error"], value
        by_query = await owner.get(url, params={"lastEventId": value})
        assert_error(by_query, 400, "bad_request")
    async with aconnect_sse(owner, "GET", url, params={"lastEventId": "3"}) as source:
        assert [event.id async for event in source.aiter_sse()] == ["4", "5", "6"]
    everything_seen = await owner.get(url, headers={"Last-Event-ID": "6"})
    assert everything_seen.status_code == 204  # ended, and nothing after that id


async def test_limit_must_be_a_bounded_whole_number(owner: httpx.AsyncClient) -> None:
    for value in [*BAD_NUMBERS, "0", "201"]:
        response = await owner.get("/api/executions", params={"limit": value})
        assert "'limit'" in assert_error(response, 400, "bad_request")["error"], value
    assert (await owner.get("/api/executions", params={"limit": "200"})).status_code == 200
