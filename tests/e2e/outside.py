"""For end-to-end tests of nodes that reach the outside world: a FlowTrux server that may reach
the loopback servers of tests/outside (and trusts the fake model as its LLM endpoint), and a
run's answer and logs."""

from typing import Any

import httpx

from tests.e2e.conftest import Server, StartServer
from tests.outside.fake_llm import FakeLLM

LOOPBACK = "127.0.0.1/32"


async def server_reaching(start_server: StartServer, llm: FakeLLM, **settings: Any) -> Server:
    return await start_server(http_allow_cidrs=LOOPBACK, llm_base_url=llm.url, **settings)


async def execute(owner: httpx.AsyncClient, workflow_id: str, body: Any = None) -> dict[str, Any]:
    """The answer of `POST /execute`: the run, ended."""
    answer = await owner.post(f"/api/workflows/{workflow_id}/execute", json=body or {})
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def log_of(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(log for log in run["logs"] if log["nodeId"] == node_id)
    return found
