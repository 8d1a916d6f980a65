"""Each workspace has its share of the outbound connections: one workspace's slow targets keep
its own requests waiting, never another workspace's."""

from typing import Any

import httpx
import trio

from tests.e2e.conftest import StartServer, logged_in
from tests.e2e.reaching_out.conftest import LOOPBACK
from tests.e2e.reaching_out.runs import execute, log_of, until
from tests.outside.fake_llm import FakeLLM
from tests.outside.target import Target
from tests.support import edge, http, trigger, workflow

SLOW = ("s1", "s2", "s3")


async def create(client: httpx.AsyncClient, workspace_id: str, doc: dict[str, Any]) -> str:
    response = await client.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["workflow"]["id"]
    return workflow_id


async def test_a_workspace_waits_for_its_own_connections_and_no_other(
    start_server: StartServer, llm: FakeLLM, target: Target
) -> None:
    server = await start_server(
        http_allow_cidrs=LOOPBACK, llm_base_url=llm.url, max_outbound_per_workspace=2
    )
    alpha = await server.member("a@example.com", workspace="Alpha")
    beta = await server.member("b@example.com", workspace="Beta")
    slow = {"url": f"{target.url}/slow?ms=1500", "timeoutMs": 700}
    fan_out = workflow(
        [trigger(), *(http(node_id, slow, onError="continue") for node_id in SLOW)],
        [edge("trigger", node_id) for node_id in SLOW],
    )
    quick = workflow(
        [trigger(), http("call", {"url": f"{target.url}/json", "timeoutMs": 500})],
        [edge("trigger", "call")],
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as a,
        httpx.AsyncClient(base_url=server.url, timeout=10) as b,
        trio.open_nursery() as nursery,
    ):
        await logged_in(a, "a@example.com")
        await logged_in(b, "b@example.com")
        slow_id, quick_id = await create(a, alpha, fan_out), await create(b, beta, quick)
        runs: dict[str, dict[str, Any]] = {}

        async def run_slow() -> None:
            runs["slow"] = await execute(a, slow_id)

        nursery.start_soon(run_slow)
        await until(lambda: len(target.requests) == 2)
        runs["quick"] = await execute(b, quick_id)  # Alpha holds both of its connections

    assert runs["quick"]["success"] is True, runs["quick"]
    errors = sorted(log_of(runs["slow"], node_id)["error"] for node_id in SLOW)
    assert errors == [
        "timed out after 700 ms (timeoutMs): it waited for one of the workspace's 2 outbound"
        " connections, all in use: no request was sent",
        "timed out after 700 ms (timeoutMs): no complete answer came",
        "timed out after 700 ms (timeoutMs): no complete answer came",
    ]
    assert sum(r.path == "/slow" for r in target.requests) == 2
