"""A background run's completion callback: the terminal payload POSTed to the trigger's
`callbackUrl`, signed with HMAC-SHA256 over the body, tried again after a failure, each try in
the execution's history."""

import hashlib
import hmac
import json

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from tests.e2e.conftest import CreateWorkflow, Server, StartServer, wait_until_finished
from tests.e2e.reaching_out.conftest import LOOPBACK
from tests.outside.fake_llm import FakeLLM
from tests.outside.target import Target
from tests.support import chain, delay, node, transform

SECRET = "callback-secret-for-tests"


@pytest.fixture
async def server(start_server: StartServer, llm: FakeLLM) -> Server:
    return await start_server(
        http_allow_cidrs=LOOPBACK, llm_base_url=llm.url, callback_secret=SECRET
    )


async def test_a_background_runs_end_is_called_back_signed_and_tried_again(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    callback = f"{target.url}/flaky/cb?failures=1&status=500"
    start = node(
        "trigger", "trigger", {"continueOnDisconnect": True, "callbackUrl": callback}, name="S"
    )
    workflow_id = await create_workflow(chain(start, delay("wait", 300), transform("t", 42)))
    url = f"/api/workflows/{workflow_id}/execute/stream"
    async with aconnect_sse(owner, "POST", url, json={}) as source:  # left: the run goes on
        execution_id = (await anext(source.aiter_sse())).json()["executionId"]
    ended = await wait_until_finished(owner, execution_id)
    assert (ended["status"], ended["background"]) == ("COMPLETED", True)

    async def recorded() -> list[dict[str, object]]:
        answer = await owner.get(f"/api/executions/{execution_id}")
        found: list[dict[str, object]] = answer.json()["execution"]["callbacks"]
        return found

    with trio.fail_after(10):
        while True:
            if len(tries := await recorded()) == 2:
                break
            await trio.sleep(0.05)
    assert [(t["attempt"], t["status"], t["error"]) for t in tries] == [
        (1, 500, "the callback answered 500"),
        (2, 200, None),
    ]
    sent = [request for request in target.requests if request.path == "/flaky/cb"]
    assert len(sent) == 2
    for request in sent:
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-flowtrux-signature"] == expected
        assert json.loads(request.body) == {
            "success": True,
            "executionId": execution_id,
            "error": None,
            "cancelled": False,
            "durationMs": ended["durationMs"],
            "output": 42,
        }


async def test_a_run_someone_waits_for_is_not_called_back(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    start = node("trigger", "trigger", {"callbackUrl": f"{target.url}/json"}, name="S")
    workflow_id = await create_workflow(chain(start, transform("t", 1)))
    run = (await owner.post(f"/api/workflows/{workflow_id}/execute", json={})).json()
    history = (await owner.get(f"/api/executions/{run['executionId']}")).json()["execution"]
    assert history["callbacks"] == []
    assert target.requests == []
