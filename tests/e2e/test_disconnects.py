"""Clients that leave, against the real app under real hypercorn, with raw HTTP/1.1 (socket) and
HTTP/2 (h2) clients: whatever they leave behind them, the handler of their request is stopped,
a run they started ends `CANCELLED` (unless its trigger says `continueOnDisconnect`), and the
server goes on serving everyone else. And `100 Continue` comes only after the route's checks.

See flowtrux/http/hypercorn_fixes/app_inbox.py and h11_reading.py.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import argon2
import httpx
import pytest
import trio
import trio.testing
from httpx_sse import aconnect_sse

from tests.e2e.conftest import PASSWORD, Server, logged_in, wait_until_finished
from tests.http.probe import H2Client, chunked_request, read_until
from tests.support import chain, delay, transform, trigger

SLOW = chain(trigger(), delay("wait", 30_000), transform("after", 1), name="Slow")
QUICK = chain(trigger(), transform("done", {"ok": True}), name="Quick")
WITNESS = chain(trigger(), delay("wait", 1_000), transform("done", 1), name="Witness")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
QUIET_S = 0.05  # the server has nothing left to do once its tasks wait this long (a process
# with runs reads the Stop requests for them every 0.1 s: a longer quiet would never come)


@pytest.fixture
async def owner_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The owner of workspace Acme, logged in (HTTP/1.1)."""
    await server.member("owner@example.com")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield await logged_in(client, "owner@example.com")


async def workflow(server: Server, doc: dict[str, Any]) -> str:
    workspace_id = await server.member("owner@example.com")
    created = await server.store.workflows.create(
        workspace_id, doc["name"], doc["nodes"], doc["edges"]
    )
    return created.id


def cookie(client: httpx.AsyncClient) -> str:
    return f"flowtrux_session={client.cookies['flowtrux_session']}"


async def connect(server: Server) -> trio.SocketStream:
    url = urlsplit(server.url)
    return await trio.open_tcp_stream(url.hostname or "", url.port or 80)


def stream_path(workflow_id: str) -> str:
    return f"/api/workflows/{workflow_id}/execute/stream"


async def executions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    executions: list[dict[str, Any]] = (await client.get("/api/executions")).json()["executions"]
    return executions


def first_data(stream: bytes) -> str:
    """The execution id in the first event (`start`) of a stream."""
    execution_id: str = json.loads(stream.split(b"data: ", 1)[1].split(b"\n", 1)[0])["executionId"]
    return execution_id


@asynccontextmanager
async def others_served(server: Server, owner: httpx.AsyncClient) -> AsyncIterator[None]:
    """Around an attack: a stream started before it ends with its terminal event; after it,
    `/healthz` answers and every execution has ended."""
    witness = stream_path(await workflow(server, WITNESS))
    events: list[str] = []

    async def watch() -> None:
        async with aconnect_sse(owner, "POST", witness, json={}) as source:
            events.extend([event.event async for event in source.aiter_sse()])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        yield
    assert events[0] == "start"
    assert events[-1] == "complete"
    assert (await owner.get("/healthz")).status_code == 200
    assert {execution["status"] for execution in await executions(owner)} <= TERMINAL


BODY_IN_PIECES = [piece.encode() for piece in ('{"note": "', *["x" * 100] * 7, '"}')]


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2"])
async def test_a_client_that_leaves_behind_a_body_in_pieces_leaves_no_run_going(
    server: Server, owner_client: httpx.AsyncClient, http_version: str
) -> None:
    """9 pieces and the end of the body fill the app's queue of 10 messages while the route
    checks the session; then the client closes (HTTP/1.1) or resets (HTTP/2). Its disconnect
    must still reach the app: the run never starts, or is cancelled. (A correction that dropped
    a disconnect finding the queue full let this run go on to COMPLETED; upstream hypercorn
    waits for room instead, and passes. Over HTTP/1.1 the close comes in a later read, so
    whether the queue is still full then is a matter of timing: tests/http/test_app_inbox.py
    shows it for certain.)"""
    path = stream_path(await workflow(server, SLOW))
    session = cookie(owner_client)
    async with others_served(server, owner_client):
        async with await connect(server) as tcp:
            if http_version == "HTTP/1.1":
                await tcp.send_all(chunked_request(path, BODY_IN_PIECES, f"Cookie: {session}"))
            else:
                h2c = H2Client(tcp)
                headers = [(b"cookie", session.encode())]
                await h2c.reset(await h2c.request(path, BODY_IN_PIECES, headers=headers))
                await trio.testing.wait_all_tasks_blocked(QUIET_S)
        await trio.testing.wait_all_tasks_blocked(QUIET_S)  # its handler is done, or its run waits
        slow = [e for e in await executions(owner_client) if e["workflowName"] == SLOW["name"]]
        assert [execution["status"] for execution in slow] in ([], ["CANCELLED"])


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 hash and verification started from now on, whatever calls it."""
    started: list[str] = []
    for name in ("hash", "verify"):
        original = getattr(argon2.PasswordHasher, name)

        def counted(
            self: argon2.PasswordHasher, *args: Any, _name: str = name, _fn: Any = original
        ) -> Any:
            started.append(_name)
            return _fn(self, *args)

        monkeypatch.setattr(argon2.PasswordHasher, name, counted)
    return started


async def test_logins_reset_right_after_their_body_hash_no_password(
    server: Server, owner_client: httpx.AsyncClient, hashes: list[str]
) -> None:
    guess = json.dumps({"email": "owner@example.com", "password": "guess"}).encode()
    right = json.dumps({"email": "owner@example.com", "password": PASSWORD}).encode()
    hashes.clear()  # the owner's own: async fixtures run after this sync one
    async with others_served(server, owner_client), await connect(server) as tcp:
        h2c = H2Client(tcp)
        for _ in range(200):  # HEADERS, DATA and RST_STREAM in one write
            await h2c.abandon("/api/auth/login", [guess])
        await trio.testing.wait_all_tasks_blocked(QUIET_S)
        assert hashes == []  # 147 of the 200 hashed without the correction
        assert (await h2c.answer(await h2c.request("/api/auth/login", [right])))[0] == 200


async def test_a_reset_stream_whose_trigger_says_continue_leaves_its_run_going(
    server: Server, owner_client: httpx.AsyncClient
) -> None:
    doc = chain(trigger(continueOnDisconnect=True), delay("wait", 300), transform("after", 1))
    path = stream_path(await workflow(server, doc))
    session = [(b"cookie", cookie(owner_client).encode())]
    async with others_served(server, owner_client), await connect(server) as tcp:
        h2c = H2Client(tcp)
        stream_id = await h2c.request(path, [b"{}"], headers=session)
        await h2c.until(lambda: b'"nodeId":"wait"' in h2c.bodies.get(stream_id, b""))
        await h2c.reset(stream_id)
        history = await wait_until_finished(owner_client, first_data(h2c.bodies[stream_id]))
    assert (history["status"], history["background"]) == ("COMPLETED", True)


async def test_a_close_behind_a_stray_crlf_cancels_the_run(
    server: Server, owner_client: httpx.AsyncClient
) -> None:
    path = stream_path(await workflow(server, SLOW))
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nCookie: {cookie(owner_client)}\r\n"
    request = f"{head}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}\r\n"
    async with others_served(server, owner_client):
        async with await connect(server) as tcp:
            await tcp.send_all(request.encode())  # a CRLF after the body, as some clients send
            received = await read_until(tcp, b'"nodeId":"wait"')
        history = await wait_until_finished(owner_client, first_data(received))
    assert history["status"] == "CANCELLED"


async def test_a_pipelined_request_is_answered_after_a_stream(
    server: Server, owner_client: httpx.AsyncClient
) -> None:
    path = stream_path(await workflow(server, QUICK))
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nCookie: {cookie(owner_client)}\r\n"
    stream = f"{head}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    async with await connect(server) as tcp:
        await tcp.send_all(f"{stream}GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = await read_until(tcp, b'{"status":"ok"}')
    assert received.index(b"event: complete") < received.index(b'{"status":"ok"}')


def expecting(path: str, length: int, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    request = f"POST {path} HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n{head}"
    return f"{request}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()


async def test_100_continue_comes_only_after_the_checks(
    server: Server, owner_client: httpx.AsyncClient
) -> None:
    path = stream_path(await workflow(server, SLOW))
    session = f"Cookie: {cookie(owner_client)}"
    for request, status in (
        (expecting(path, 2), b"HTTP/1.1 401 "),  # no session
        (expecting(path, 5_000_000, session), b"HTTP/1.1 413 "),  # over the limit
    ):
        async with await connect(server) as tcp:
            await tcp.send_all(request)
            assert (await read_until(tcp, b"}")).startswith(status)
    login = json.dumps({"email": "owner@example.com", "password": PASSWORD}).encode()
    async with await connect(server) as tcp:
        await tcp.send_all(expecting("/api/auth/login", len(login)))
        assert (await read_until(tcp, b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        await tcp.send_all(login)
        assert (await read_until(tcp, b"}}")).startswith(b"HTTP/1.1 200 ")
    assert await executions(owner_client) == []
