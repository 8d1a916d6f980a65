"""One tenant's heavy workflow, against `flowtrux serve` as a real process, while another tenant
asks `/healthz` every 20 ms: outputs have a size, and nobody else waits for them.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.healthz_watch import Latency, watching_health
from tests.e2e.processes import create_workflow, flowtrux, running, server_env
from tests.support import Doc, chain, condition, delay, edge, transform, trigger, workflow

WORST_HEALTH_WAIT_S = 0.25
JSON = {"content-type": "application/json"}
LIMIT = 4 * 1024 * 1024


@pytest.fixture
async def env(tmp_path: Path) -> dict[str, str]:
    return await server_env(tmp_path, max_body_bytes=str(4 * 2**20))


def doubling_chain(length: int) -> Doc:
    """Each transform outputs its predecessor's output twice: the JSON doubles at every node
    (a 3 KB workflow that would output 2**30 KB at its end)."""
    nodes = [trigger(staticData={"seed": "x" * 1000})]
    previous = "trigger.data.seed"
    for n in range(length):
        nodes.append(transform(f"double-{n}", [f"{{{{{previous}}}}}", f"{{{{{previous}}}}}"]))
        previous = f"double-{n}.output"
    return chain(*nodes)


PUNCTUAL = chain(trigger(), delay("wait", 1000, timeoutMs=1500))


@asynccontextmanager
async def another_tenant(url: str, client: httpx.AsyncClient) -> AsyncIterator[Latency]:
    """Meanwhile, another tenant asks `/healthz` every 20 ms on its own connection, and runs a
    1 s delay with a 1.5 s timeout, which must complete: its node's time is its own."""
    punctual_id = await create_workflow(client, PUNCTUAL)
    punctual: list[httpx.Response] = []

    async def run_punctual() -> None:
        punctual.append(await client.post(f"/api/workflows/{punctual_id}/execute", json={}))

    async with (
        httpx.AsyncClient(base_url=url) as other,
        watching_health(other) as health,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(run_punctual)
        await trio.sleep(0.2)  # its delay has begun
        yield health
    assert punctual[0].json()["success"] is True, punctual[0].text


async def test_an_output_that_doubles_at_every_node_fails_at_the_limit_and_stalls_no_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with (
        running(flowtrux("serve", "--port", "0"), env, tmp_path) as (_, url, output),
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        workflow_id = await create_workflow(client, doubling_chain(30))
        async with another_tenant(url, client) as health:
            answer = await client.post(f"/api/workflows/{workflow_id}/execute", json={})
            history = await client.get(f"/api/executions/{answer.json()['executionId']}")
        assert health.worst_s < WORST_HEALTH_WAIT_S, (health.worst_s, output.decode()[-2000:])

    assert answer.status_code == 200, answer.text
    result = answer.json()
    # 1,000 characters doubled 12 times is 4,100,094 bytes of JSON: within 4 MiB; 13 times is not.
    assert result["success"] is False
    assert result["error"] == (
        "node 'Make double-12' (double-12) failed: the output is larger than 4,194,304 bytes of"
        " JSON, the limit set by FLOWTRUX_MAX_OUTPUT_BYTES"
    )
    logs = {log["nodeId"]: log for log in history.json()["execution"]["logs"]}
    assert len(logs) == 31  # every node has its log, the unreached ones included
    assert logs["double-11"]["status"] == "success"
    assert len(httpx.Response(200, json=logs["double-11"]["output"]).content) <= LIMIT
    assert logs["double-12"]["status"] == "error"
    assert logs["double-12"]["output"] is None
    assert {logs[f"double-{n}"]["status"] for n in range(13, 30)} == {"skipped"}


async def test_a_condition_comparing_large_values_errors_at_once_and_stalls_no_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    same = " and ".join(["trigger.data.z == trigger.data.w"] * 100)  # 3.2 KB
    # Two equal lists (400 KB: every comparison took 0.2 s before), encoded beforehand: this
    # process's own work would count as waits.
    body = json.dumps({"z": [0] * 100_000, "w": [0] * 100_000}).encode()
    async with (
        running(flowtrux("serve", "--port", "0"), env, tmp_path) as (_, url, output),
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        workflow_id = await create_workflow(client, chain(trigger(), condition("same", same)))
        async with another_tenant(url, client) as health:
            sent = trio.current_time()
            answer = await client.post(
                f"/api/workflows/{workflow_id}/execute", content=body, headers=JSON
            )
            took = trio.current_time() - sent
        assert health.worst_s < WORST_HEALTH_WAIT_S, (health.worst_s, output.decode()[-2000:])
    assert took < 2.0  # at once, not after comparing 100 times 100,000 values (20 s before)
    assert answer.json()["success"] is False
    assert "the condition compares more than 20,000 values" in answer.json()["error"]


async def test_a_fan_out_of_large_outputs_stops_at_the_runs_log_limit(tmp_path: Path) -> None:
    limit = 16 * 2**20
    env = await server_env(tmp_path, max_run_log_bytes=str(limit))
    wide = [transform(f"copy-{n}", ["{{trigger.data.s}}"] * 3) for n in range(30)]  # 3 MB each
    nodes = [trigger(), *wide, transform("join", "joined")]
    edges = [edge("trigger", copy["id"]) for copy in wide] + [
        edge(copy["id"], "join") for copy in wide
    ]
    body = json.dumps({"s": "x" * 1_000_000}).encode()
    async with (
        running(flowtrux("serve", "--port", "0"), env, tmp_path) as (_, url, _output),
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        workflow_id = await create_workflow(client, workflow(nodes, edges))
        answer = await client.post(
            f"/api/workflows/{workflow_id}/execute", content=body, headers=JSON
        )
        history = await client.get(f"/api/executions/{answer.json()['executionId']}")
    assert answer.json()["success"] is False
    assert "the run's logs are larger than 16,777,216 bytes of JSON" in answer.json()["error"]
    # What was stored and answered is the limit and the node that passed it, not 30 times 4 MB.
    assert len(answer.content) < limit + 3 * LIMIT
    assert len(history.content) < limit + 3 * LIMIT
