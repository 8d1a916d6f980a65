"""Nodes that reach the outside world, end to end: a FlowTrux server that may reach the loopback
servers of tests/outside (127.0.0.1 opened) and trusts the fake model as its LLM endpoint,
reached by a client over HTTP/1.1 (how the client reaches FlowTrux is not what these tests are
about; test_cancel_io.py tries both)."""

import pytest

from tests.e2e.conftest import Server, StartServer
from tests.outside.fake_llm import FakeLLM

LOOPBACK = "127.0.0.1/32"


@pytest.fixture
def http_version() -> str:
    return "HTTP/1.1"


@pytest.fixture
async def server(start_server: StartServer, llm: FakeLLM) -> Server:
    return await start_server(http_allow_cidrs=LOOPBACK, llm_base_url=llm.url)
