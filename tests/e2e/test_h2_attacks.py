"""A raw HTTP/2 client against the real app under real hypercorn: what one client sends must not
stop the server nor cut off other streams, and a connection that has served its last request
retires without losing a stream (see flowtrux/http/hypercorn_fixes/h2_streams.py).

After each attack `/healthz` still answers, the streams that were open end with their terminal
event, and every run that started is terminal.
"""

import json
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import h2.errors
import httpx
import pytest
import trustme

from tests.e2e.conftest import Server, StartServer, logged_in, wait_until_finished
from tests.http.h2_attacks import (
    UNSERVABLE,
    Exchange,
    H2Client,
    connected,
    prioritize_streams_never_opened,
)
from tests.support import chain, delay, transform, trigger

EMAIL = "owner@example.com"
REQUESTS = 1_500
MAX_REQUESTS = 1_000  # hypercorn's keep_alive_max_requests
STREAM_LIMIT = 100  # hypercorn's h2_max_concurrent_streams


@pytest.fixture(params=["h2c", "TLS"])
async def tls_server(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> tuple[Server, trustme.CA | None]:
    """The app over h2c, or over TLS with a certificate from a new authority."""
    if request.param == "h2c":
        return await start_server(), None
    authority = trustme.CA()
    pem = tmp_path / "server.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    config_file = tmp_path / "hypercorn.toml"
    config_file.write_text(f'certfile = "{pem}"\nkeyfile = "{pem}"\n')
    return await start_server(config_file=config_file), authority


class Runs:
    """The owner's session, and what it takes to stream a workflow's runs over a raw client."""

    def __init__(self, server: Server, session: httpx.AsyncClient, workflow_id: str) -> None:
        self.server = server
        self.session = session
        self.workflow_id = workflow_id
        self.port = urlsplit(server.url).port or 0

    async def stream(self, client: H2Client) -> int:
        """Start a run on `client` and return its stream id, without reading anything."""
        cookie = f"flowtrux_session={self.session.cookies['flowtrux_session']}"
        path = f"/api/workflows/{self.workflow_id}/execute/stream".encode()
        fields = [(b"content-type", b"application/json"), (b"cookie", cookie.encode())]
        return await client.send(client.head(b"POST", path, *fields), b"{}")

    async def started(self, client: H2Client) -> tuple[int, str]:
        """Start a run on `client`; once it has started, return its stream and execution ids."""
        stream_id = await self.stream(client)
        await client.receive_until(lambda: b"event: start" in client.exchanges[stream_id].body)
        return stream_id, execution_id(client.exchanges[stream_id].body)

    async def final_statuses(self) -> list[str]:
        """The status of every run of the workflow, once each has ended."""
        query = {"workflowId": self.workflow_id, "limit": "200"}
        executions = (await self.session.get("/api/executions", params=query)).json()
        finished = [
            await wait_until_finished(self.session, execution["id"])
            for execution in executions["executions"]
        ]
        return [execution["status"] for execution in finished]


@asynccontextmanager
async def runs_of(
    server: Server, authority: trustme.CA | None, wait_ms: int
) -> AsyncIterator[Runs]:
    """A logged-in owner and a workflow that waits `wait_ms` before it completes."""
    workspace_id = await server.member(EMAIL)
    doc = chain(trigger(), delay("wait", wait_ms), transform("after", 1))
    workflow = await server.store.workflows.create(workspace_id, "Wait", doc["nodes"], doc["edges"])
    async with httpx.AsyncClient(base_url=server.url, verify=trusting(authority)) as session:
        await logged_in(session, EMAIL)
        yield Runs(server, session, workflow.id)


def trusting(authority: trustme.CA | None) -> ssl.SSLContext | bool:
    if authority is None:
        return True
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


def event_names(body: bytes) -> list[str]:
    return [
        line[len("event: ") :] for line in body.decode().splitlines() if line.startswith("event: ")
    ]


def execution_id(body: bytes) -> str:
    start = body.split(b"event: start\n", 1)[1]
    data = start.split(b"data: ", 1)[1].split(b"\n", 1)[0]
    found: str = json.loads(data)["executionId"]
    return found


async def healthy(client: H2Client) -> bool:
    answer = await client.exchange(await client.get(b"/healthz"))
    return answer.status == 200 and answer.ended


class Upstream:
    """What a proxy does with its upstream connections: one at a time, a new one once the server
    has retired the current one, and a request the server refused retried on the new one."""

    def __init__(self, stack: AsyncExitStack, port: int) -> None:
        self.stack = stack
        self.port = port
        self.connections: list[H2Client] = []

    async def current(self) -> H2Client:
        if not self.connections or self.connections[-1].goaway is not None:
            self.connections.append(await self.stack.enter_async_context(connected(self.port)))
        return self.connections[-1]

    async def get(self, path: bytes) -> Exchange:
        client = await self.current()
        answer = await client.exchange(await client.get(path))
        if answer.reset == h2.errors.ErrorCodes.REFUSED_STREAM:
            assert client.goaway is not None, "refused on a connection that was not retired"
            return await self.get(path)  # sent before the GOAWAY arrived: safe to retry
        return answer


async def test_a_request_the_app_cannot_be_given_leaves_the_rest_alone(
    tls_server: tuple[Server, trustme.CA | None],
) -> None:
    server, authority = tls_server
    async with runs_of(server, authority, wait_ms=300) as runs:
        async with connected(runs.port, authority) as client:
            stream_id, _ = await runs.started(client)
            for case in UNSERVABLE.values():
                answer = await client.exchange(await client.send(case.head(client)))
                assert (answer.status, answer.ended) == (case.status, True)
            assert await healthy(client)
            assert event_names((await client.exchange(stream_id)).body)[-1] == "complete"
        async with connected(runs.port, authority) as another:
            assert await healthy(another)
        assert await runs.final_statuses() == ["COMPLETED"]


async def test_priority_for_streams_never_opened_leaves_the_rest_alone(server: Server) -> None:
    async with runs_of(server, None, wait_ms=300) as runs, connected(runs.port) as client:
        first, _ = await runs.started(client)
        await prioritize_streams_never_opened(client)
        second, _ = await runs.started(client)  # its stream finds the priority tree full
        assert await healthy(client)
        for stream_id in (first, second):
            assert event_names((await client.exchange(stream_id)).body)[-1] == "complete"
        assert await runs.final_statuses() == ["COMPLETED"] * 2


async def test_1500_sequential_requests_with_a_stream_open_across_request_1000(
    server: Server,
) -> None:
    """A proxy's long-lived upstream connection. The server retires it after its 1,000th
    request, the proxy opens another for the rest, and the stream that was open on the retired
    connection still gets every event up to its terminal one."""
    async with runs_of(server, None, wait_ms=60_000) as runs, AsyncExitStack() as stack:
        upstream = Upstream(stack, runs.port)
        retired = await upstream.current()
        stream_id, execution = await runs.started(retired)  # request 1 on `retired`
        answers = [await upstream.get(b"/healthz") for _ in range(REQUESTS)]
        assert [answer.status for answer in answers] == [200] * REQUESTS
        assert len(upstream.connections) == 2
        assert retired.goaway is not None
        assert (retired.goaway.last_stream_id, retired.goaway.error_code) == (
            2 * MAX_REQUESTS - 1,  # client streams are 1, 3, 5, …
            0,
        )
        assert not retired.exchanges[stream_id].over  # open across request 1,000

        stop = await runs.session.post(f"/api/executions/{execution}/cancel")
        assert stop.status_code == 202
        events = event_names((await retired.exchange(stream_id)).body)
        assert events[-1] == "cancelled"
        assert retired.exchanges[stream_id].ended
        assert await healthy(upstream.connections[-1])
        assert await runs.final_statuses() == ["CANCELLED"]


async def test_a_stream_over_the_limit_is_refused_alone(server: Server) -> None:
    async with runs_of(server, None, wait_ms=1_000) as runs, connected(runs.port) as client:
        # All the HEADERS go out before the client reads the server's SETTINGS, as a proxy's
        # first burst on a fresh connection does.
        streams = [await runs.stream(client) for _ in range(STREAM_LIMIT)]
        extra = await runs.stream(client)
        assert (await client.exchange(extra)).reset == h2.errors.ErrorCodes.REFUSED_STREAM
        for stream_id in streams:
            assert event_names((await client.exchange(stream_id)).body)[-1] == "complete"
        assert client.goaway is None
        assert await healthy(client)
        assert await runs.final_statuses() == ["COMPLETED"] * STREAM_LIMIT
