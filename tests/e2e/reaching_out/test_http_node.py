"""The `http` node against a real HTTP target on loopback: templates, JSON, retries, statuses,
redirects, size limits, timeouts, and the guard refusing what the operator did not open."""

import json
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CreateWorkflow, StartServer
from tests.e2e.reaching_out.runs import execute, log_of
from tests.outside.fake_llm import FakeLLM
from tests.outside.target import Target
from tests.support import chain, http, transform, trigger

MIB = 1024 * 1024


async def run_http(
    owner: httpx.AsyncClient,
    create_workflow: CreateWorkflow,
    config: dict[str, Any],
    body: Any = None,
    **settings: Any,
) -> dict[str, Any]:
    workflow_id = await create_workflow(chain(trigger(), http("call", config, **settings)))
    return await execute(owner, workflow_id, body)


async def test_a_templated_request_sends_json_and_parses_json(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    workflow_id = await create_workflow(
        chain(
            trigger(),
            transform("ticket", {"id": "{{trigger.data.ticket}}", "tags": ["a", "b"]}),
            http(
                "call",
                {
                    "method": "POST",
                    "url": f"{target.url}/json",
                    "headers": {"X-Ticket": "{{ticket.output.id}}"},
                    "query": {"q": "{{trigger.data.q}}", "n": 3, "flag": True, "tag": ["x", "y"]},
                    "body": {"ticket": "{{ticket.output}}", "note": "id {{ticket.output.id}}"},
                },
            ),
        )
    )
    run = await execute(owner, workflow_id, {"ticket": "T-7", "q": "a b&c"})

    assert run["success"] is True, run
    output = run["output"]
    assert output["status"] == 200
    assert output["headers"]["content-type"] == "application/json"
    echoed = output["body"]  # parsed, not text
    assert echoed["method"] == "POST"
    assert echoed["headers"]["x-ticket"] == "T-7"
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["query"] == {"q": "a b&c", "n": "3", "flag": "true", "tag": "y"}
    assert echoed["body"] == {"ticket": {"id": "T-7", "tags": ["a", "b"]}, "note": "id T-7"}
    assert target.requests[-1].query.count("tag=") == 2

    [sent] = log_of(run, "call")["externalRequests"]
    assert sent["method"] == "POST"
    assert sent["url"].startswith(f"{target.url}/json?q=a+b%26c")
    assert sent["status"] == 200
    as_sent = json.dumps(echoed, separators=(",", ":"), ensure_ascii=False)  # as Starlette does
    assert sent["bytes"] == len(as_sent.encode())
    assert isinstance(sent["durationMs"], int)


async def test_text_comes_back_as_text(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    run = await run_http(owner, create_workflow, {"url": f"{target.url}/text"})
    assert run["output"]["body"] == "hello from the target"


async def test_a_failing_server_is_retried_until_it_answers(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    config = {"url": f"{target.url}/flaky/k1?failures=2&status=503"}
    retry = {"maxAttempts": 3, "backoffMs": 10}
    run = await run_http(owner, create_workflow, config, retry=retry)

    assert run["success"] is True, run
    assert run["output"]["body"] == {"attempt": 3}
    log = log_of(run, "call")
    assert log["attempt"] == 3
    assert [sent["status"] for sent in log["externalRequests"]] == [503, 503, 200]


async def test_a_status_outside_2xx_fails_the_node_unless_accepted(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    failed = await run_http(owner, create_workflow, {"url": f"{target.url}/status/404"})
    assert failed["success"] is False
    log = log_of(failed, "call")
    assert log["status"] == "error"
    assert log["error"].startswith("the server answered 404 Not Found"), log["error"]
    assert log["externalRequests"][0]["status"] == 404  # told even on error

    config = {"url": f"{target.url}/status/404", "acceptStatus": [404]}
    accepted = await run_http(owner, create_workflow, config)
    assert accepted["success"] is True
    assert accepted["output"]["status"] == 404


async def test_redirects_are_followed_five_times_and_no_more(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    five = await run_http(owner, create_workflow, {"url": f"{target.url}/hops/5"})
    assert five["success"] is True, five
    assert five["output"]["body"]["path"] == "/hops/0"
    assert [sent["status"] for sent in log_of(five, "call")["externalRequests"]] == [302] * 5 + [
        200
    ]

    six = await run_http(owner, create_workflow, {"url": f"{target.url}/hops/6"})
    assert log_of(six, "call")["error"] == "more than 5 redirects"


@pytest.mark.parametrize("length", ["yes", "no"])
async def test_a_response_over_the_limit_is_cut_off_unread(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target, length: str
) -> None:
    """64 MiB offered, 1 MiB allowed: the node fails, and the target could not send it all."""
    url = f"{target.url}/huge?bytes={64 * MIB}&length={length}&rid=huge-{length}"
    run = await run_http(owner, create_workflow, {"url": url, "maxResponseBytes": MIB})

    error = log_of(run, "call")["error"]
    if length == "yes":  # announced: refused before reading
        assert "announces 67,108,864 bytes, over the limit of 1,048,576" in error
    else:
        assert "larger than 1,048,576 bytes (maxResponseBytes): cut off" in error
    await target.wait_disconnect(f"huge-{length}", 5)
    assert target.sent[f"huge-{length}"] < 16 * MIB


async def test_a_compressed_answer_is_refused_before_it_is_unpacked(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    run = await run_http(owner, create_workflow, {"url": f"{target.url}/gzip-bomb"})
    assert "compressed answer (Content-Encoding: gzip)" in log_of(run, "call")["error"]
    assert target.requests[-1].headers["accept-encoding"] == "identity"


async def test_timeout_ms_bounds_the_whole_request(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow, target: Target
) -> None:
    config = {"url": f"{target.url}/slow?ms=5000&rid=late", "timeoutMs": 200}
    run = await run_http(owner, create_workflow, config)
    error = log_of(run, "call")["error"]
    assert error == "timed out after 200 ms (timeoutMs): no complete answer came"
    await target.wait_disconnect("late", 1)


async def test_an_address_the_operator_did_not_open_fails_at_once_and_is_not_retried(
    start_server: StartServer, target: Target, llm: FakeLLM, create_workflow: CreateWorkflow
) -> None:
    """This server opened no network: the target on 127.0.0.1 is refused."""
    closed = await start_server(llm_base_url=llm.url)
    await closed.member("owner@example.com")
    async with httpx.AsyncClient(base_url=closed.url) as owner:
        login = {"email": "owner@example.com", "password": "correct horse battery staple"}
        assert (await owner.post("/api/auth/login", json=login)).status_code == 200
        space = await closed.member("owner@example.com")
        doc = chain(
            trigger(),
            http("call", {"url": f"{target.url}/json"}, retry={"maxAttempts": 3}),
        )
        created = await owner.post("/api/workflows", json={"workspaceId": space, **doc})
        run = await execute(owner, created.json()["workflow"]["id"])

    log = log_of(run, "call")
    assert log["error"].startswith("blocked: 127.0.0.1 is a loopback address")
    assert log["attempt"] == 1
    assert run["error"].endswith(log["error"])
    assert target.requests == []
