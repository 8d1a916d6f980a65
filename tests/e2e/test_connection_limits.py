"""Connections against the real app: unfinished requests and idle connections are reclaimed while
live streams and long answers go on; a process at its connection cap closes new connections at
once and stays ready; /readyz needs no new file; SIGTERM ends the server even while a client has
stopped reading its stream (see flowtrux/http/hypercorn_fixes/connections.py)."""

import itertools
import os
import resource
import signal
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from flowtrux.config import FD_RESERVE, InvalidSetting, Settings
from tests.e2e.conftest import Server, StartServer, logged_in, new_client
from tests.e2e.processes import EMAIL, PASSWORD, create_owner, create_workflow, flowtrux, running
from tests.support import chain, delay, transform, trigger

BOUND = 1.0  # FLOWTRUX_REQUEST_TIMEOUT_S of these servers
SLACK = 2.0  # how late a bound may act on a busy machine
UNFINISHED_LOGIN = (
    b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"email": "owner@example.com"'
)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 80


async def closed_by_server(stream: trio.SocketStream, within: float) -> None:
    """Read (and drop) what the server sends until it closes the connection."""
    with trio.fail_after(within):
        try:
            while await stream.receive_some():
                pass
        except trio.BrokenResourceError:  # closed with our bytes unread: a reset
            pass


def h2_client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


async def reset_by_server(stream: trio.SocketStream, conn: h2.connection.H2Connection) -> int:
    """Read until the server resets a stream; return that stream's error code."""
    with trio.fail_after(BOUND + SLACK):
        while True:
            data = await stream.receive_some()
            assert data, "the server closed the connection instead of resetting the stream"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset):
                    return int(event.error_code)


def test_the_bounds_are_settings_and_the_cap_leaves_room_under_the_descriptor_limit() -> None:
    environ = {"FLOWTRUX_REQUEST_TIMEOUT_S": "2.5", "FLOWTRUX_MAX_CONNECTIONS": "10"}
    settings = Settings.load(environ=environ)
    assert (settings.request_timeout_s, settings.max_connections) == (2.5, 10)
    room = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE
    assert Settings().max_connections == room
    with pytest.raises(InvalidSetting, match=rf"ulimit -n\): at most {room}, got {room + 1}"):
        Settings.load(environ={"FLOWTRUX_MAX_CONNECTIONS": str(room + 1)})


async def test_unfinished_requests_are_closed_while_live_answers_go_on(
    start_server: StartServer, http_version: str
) -> None:
    server = await start_server(request_timeout_s=BOUND)
    workspace_id = await server.member("owner@example.com")
    longer_than_the_bound = int(2.5 * BOUND * 1000)
    doc = chain(trigger(), delay("wait", longer_than_the_bound), transform("after", 1))
    workflow = await server.store.workflows.create(workspace_id, "Slow", doc["nodes"], doc["edges"])
    execute = f"/api/workflows/{workflow.id}/execute"
    streamed: list[ServerSentEvent] = []
    answers: list[httpx.Response] = []

    async with new_client(server, http_version) as client:
        await logged_in(client, "owner@example.com")

        async def follow_stream() -> None:
            async with aconnect_sse(client, "POST", f"{execute}/stream", json={}) as source:
                streamed.extend([event async for event in source.aiter_sse()])

        async def wait_for_run() -> None:
            answers.append(await client.post(execute, json={}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_stream)
            nursery.start_soon(wait_for_run)
            async with (
                await trio.open_tcp_stream(*address(server.url)) as preface_only,
                await trio.open_tcp_stream(*address(server.url)) as login_h1,
                await trio.open_tcp_stream(*address(server.url)) as login_h2,
            ):
                await preface_only.send_all(h2_client().data_to_send())
                await login_h1.send_all(UNFINISHED_LOGIN)
                conn = h2_client()
                path, length = "/api/auth/login", str(len(UNFINISHED_LOGIN))
                headers = [(":method", "POST"), (":path", path), (":scheme", "http")]
                conn.send_headers(1, [*headers, (":authority", "t"), ("content-length", length)])
                conn.send_data(1, b'{"email": "owner@example.com"')
                await login_h2.send_all(conn.data_to_send())

                await closed_by_server(preface_only, BOUND + SLACK)
                await closed_by_server(login_h1, BOUND + SLACK)
                assert await reset_by_server(login_h2, conn) == h2.errors.ErrorCodes.CANCEL

        assert [event.event for event in streamed][-1] == "complete"
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["success"] is True
        assert (await client.get("/healthz")).status_code == 200
        listed = await client.get("/api/executions", params={"workflowId": workflow.id})
        assert [e["status"] for e in listed.json()["executions"]] == ["COMPLETED", "COMPLETED"]


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@contextmanager
def no_file_can_be_opened() -> Iterator[None]:
    """Lower this process's file-descriptor limit to the lowest free descriptor."""
    lowest_free = next(fd for fd in itertools.count() if not is_open(fd))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_readyz_answers_on_an_open_connection_when_no_file_can_be_opened(
    server: Server, http_version: str
) -> None:
    async with new_client(server, http_version) as client:
        assert (await client.get("/readyz")).status_code == 200  # the connection is open
        with no_file_can_be_opened():
            ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}


async def test_a_process_at_its_connection_cap_closes_new_connections_and_stays_ready(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "FLOWTRUX_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "FLOWTRUX_REQUEST_TIMEOUT_S": "2",
    }
    # 256 file descriptors: the default cap is 156 connections; 300 would have exhausted them.
    limited = ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh", *flowtrux("serve", "--port", "0")]
    async with (
        running(limited, env, tmp_path) as (_process, url, output),
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200  # a connection opened before
        flood: list[trio.SocketStream] = []
        with trio.fail_after(10):  # upstream: connections past the limit hang
            for _ in range(300):
                flood.append(await trio.open_tcp_stream(*address(url)))
                await flood[-1].send_all(h2_client().data_to_send())
            async with await trio.open_tcp_stream(*address(url)) as one_more:
                await closed_by_server(one_more, 1.0)
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        for stream in flood:  # each closed by the server, at once or after the bound
            await closed_by_server(stream, 2 + SLACK)
            await stream.aclose()
        async with httpx.AsyncClient(base_url=url) as fresh:
            assert (await fresh.get("/healthz")).status_code == 200
    log = output.decode()
    assert log.count("max_connections") == 1, log
    assert "Traceback" not in log
    assert "accept returned" not in log


async def test_sigterm_ends_the_server_while_a_client_does_not_read_its_stream(
    tmp_path: Path,
) -> None:
    database = tmp_path / "x.db"
    env = {
        **os.environ,
        "FLOWTRUX_DATABASE_URL": f"sqlite:///{database}",
        "FLOWTRUX_MAX_BODY_BYTES": str(32 * 2**20),
        "FLOWTRUX_MAX_OUTPUT_BYTES": str(32 * 2**20),
    }
    await create_owner(env, tmp_path, EMAIL, PASSWORD)
    (tmp_path / "hypercorn.toml").write_text("graceful_timeout = 2\n")
    serve = running(flowtrux("serve", "--port", "0"), env, tmp_path)
    async with serve as (process, url, output), httpx.AsyncClient(base_url=url) as client:
        workflow_id = await create_workflow(client, chain(trigger(), delay("wait", 60_000)))
        # 8 MB in each event of the trigger: far more than the socket buffers hold
        body = b'{"blob": "' + b"x" * 8_000_000 + b'"}'
        async with await stalled_stream(url, workflow_id, client.cookies, body):
            execution_id = await wait_until_waiting(client, workflow_id)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(15):  # upstream: until this client closes
                exit_code = await process.wait()
    assert exit_code == 0, output.decode()
    with sqlite3.connect(database) as db:
        status = db.execute("SELECT status FROM executions WHERE id = ?", (execution_id,))
        assert status.fetchone() == ("CANCELLED",)


async def stalled_stream(
    url: str, workflow_id: str, cookies: httpx.Cookies, body: bytes
) -> trio.SocketStream:
    """Start an execute stream over HTTP/1.1 with a small receive buffer; read its status line,
    then nothing more."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    await sock.connect(address(url))
    stream = trio.SocketStream(sock)
    head = (
        f"POST /api/workflows/{workflow_id}/execute/stream HTTP/1.1\r\nHost: test\r\n"
        f"Cookie: flowtrux_session={cookies['flowtrux_session']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    await stream.send_all(head.encode() + body)
    with trio.fail_after(10):
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 200")
    return stream


async def wait_until_waiting(client: httpx.AsyncClient, workflow_id: str) -> str:
    """The id of the workflow's execution once its trigger has ended (its events are out)."""
    with trio.fail_after(10):
        while True:
            listed = await client.get("/api/executions", params={"workflowId": workflow_id})
            for summary in listed.json()["executions"]:
                found = await client.get(f"/api/executions/{summary['id']}")
                logs = found.json()["execution"]["logs"]
                if any(log["nodeId"] == "trigger" and log["status"] == "success" for log in logs):
                    execution_id: str = summary["id"]
                    return execution_id
            await trio.sleep(0.05)
