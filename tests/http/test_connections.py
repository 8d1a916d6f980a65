"""Connections against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/connections.py): each one is reclaimed, none past the cap, and a
client that stops reading does not hold up the shutdown; live answers are never touched.

Raw clients: a plain socket for HTTP/1.1, `h2` with prior knowledge (h2c) for HTTP/2.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hypercorn.config
import hypercorn.trio
import pytest
import trio
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

from flowtrux.http import hypercorn_fixes
from flowtrux.http.hypercorn_fixes.connections import Bounds, bound_connections
from tests.http.bare import RawApp, RequestScope, server_config, serving
from tests.http.h2_attacks import Exchange, speaking_h2

BOUND = 0.5  # request_timeout and keep_alive_timeout of these servers, in seconds
LONG = 3 * BOUND  # how long the slow answers take: longer than any bound
SLACK = 1.5  # how late a bound may act on a busy machine
CHUNK = b"x" * 65_536


class App(RawApp):
    """Raw ASGI app. Reads the whole body, then: `/slow` answers after LONG, `/stream` sends a
    chunk every 0.1 s for LONG, `/endless` sends 64 KiB chunks until the client goes; anything
    else answers at once. Counts the requests it got and those still waiting for their body."""

    def __init__(self) -> None:
        self.requests = 0
        self.reading = 0
        self.none_reading = trio.Event()
        self.none_reading.set()

    async def request(
        self, scope: RequestScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        self.requests += 1
        if await self._read_body(receive):
            await self._answer(scope["path"], send)

    async def _read_body(self, receive: ASGIReceiveCallable) -> bool:
        """Whether the whole body came (else the client left, or the app was cancelled)."""
        if not self.reading:
            self.none_reading = trio.Event()
        self.reading += 1
        try:
            while (message := await receive())["type"] == "http.request":
                if not message.get("more_body", False):
                    return True
            return False
        finally:
            self.reading -= 1
            if not self.reading:
                self.none_reading.set()

    async def wait_until_none_reading(self) -> None:
        with trio.fail_after(SLACK):
            await self.none_reading.wait()

    @staticmethod
    async def _answer(path: str, send: ASGISendCallable) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/slow":
            await trio.sleep(LONG)
        elif path == "/stream":
            for _ in range(int(LONG / 0.1)):
                await send({"type": "http.response.body", "body": b".", "more_body": True})
                await trio.sleep(0.1)
        elif path == "/endless":
            while True:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b"done", "more_body": False})


def config(
    max_connections: int | None = None,
    keep_alive_timeout: float = BOUND,
    request_timeout: float = BOUND,
) -> hypercorn.config.Config:
    config = server_config(keep_alive_timeout=keep_alive_timeout, graceful_timeout=BOUND)
    bound_connections(config, Bounds(request_timeout, max_connections))
    return config


async def closed_by_server(stream: trio.SocketStream, within: float) -> float:
    """Read (and drop) what the server sends until it closes; return how long that took."""
    started = trio.current_time()
    with trio.fail_after(within):
        try:
            while await stream.receive_some():
                pass
        except trio.BrokenResourceError:  # closed with unread data: a reset
            pass
    return trio.current_time() - started


async def still_open(stream: trio.SocketStream, during: float) -> bool:
    with trio.move_on_after(during):
        while await stream.receive_some():
            pass
        return False
    return True


async def read_answer(stream: trio.SocketStream) -> bytes:
    """Read an HTTP/1.1 answer of this app (chunked: it never says its length)."""
    received = b""
    with trio.fail_after(LONG + SLACK):
        while not received.endswith(b"0\r\n\r\n"):
            data = await stream.receive_some()
            assert data, f"closed after {received!r}"
            received += data
    return received


def answered_head(exchange: Exchange) -> bool:
    return exchange.status is not None


async def answered(port: int) -> bool:
    """Whether a new connection is answered (False: the server closed it at once)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as tcp:
        await tcp.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        with trio.fail_after(SLACK):
            try:
                return (await tcp.receive_some()).startswith(b"HTTP/1.1 200")
            except trio.BrokenResourceError:  # closed with the request unread: a reset
                return False


@contextmanager
def connections_closed_on_exit() -> Iterator[Callable[[trio.SocketStream], trio.SocketStream]]:
    """Yield `opened`, which registers a connection to close on exit."""
    streams: list[trio.SocketStream] = []

    def opened(stream: trio.SocketStream) -> trio.SocketStream:
        streams.append(stream)
        return stream

    try:
        yield opened
    finally:
        for stream in streams:
            stream.socket.close()


def burst_connect(port: int) -> trio.SocketStream:
    """Connect without letting the server run (the kernel completes the handshake)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


@pytest.mark.usefixtures("corrected")
async def test_an_h2c_connection_that_never_opens_a_stream_is_closed() -> None:
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        await speaking_h2(tcp)  # the preface and SETTINGS, then nothing
        assert await closed_by_server(tcp, BOUND + SLACK) >= BOUND * 0.9


@pytest.mark.usefixtures("corrected")
async def test_an_h2c_connection_whose_only_stream_was_reset_is_closed_once_idle() -> None:
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        client = await speaking_h2(tcp)
        stream_id = await client.send(client.head(b"POST", b"/"), end=False)
        client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        await closed_by_server(tcp, BOUND + SLACK)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize(
    ("request_bytes", "requests"),
    [
        (b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nonly 7", 1),
        (b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n", 1),
        (b"POST / HTTP/1.1\r\nHost: te", 0),  # no request yet: no app
    ],
    ids=["body", "chunked body", "headers"],
)
async def test_an_http1_request_that_never_ends_is_closed(
    request_bytes: bytes, requests: int
) -> None:
    app = App()
    server_config = config(keep_alive_timeout=30)  # upstream closed unfinished headers after it
    async with (
        serving(app, server_config) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        await tcp.send_all(request_bytes)
        assert await closed_by_server(tcp, BOUND + SLACK) >= BOUND * 0.9
        await app.wait_until_none_reading()
    assert app.requests == requests


@pytest.mark.usefixtures("corrected")
async def test_an_http2_stream_whose_body_never_ends_is_reset_and_the_others_go_on() -> None:
    app = App()
    async with serving(app, config()) as port, await trio.open_tcp_stream("127.0.0.1", port) as tcp:
        client = await speaking_h2(tcp)
        streaming = await client.get(b"/stream")
        waiting = await client.get(b"/slow")
        unfinished = await client.send(client.head(b"POST", b"/"), end=False)
        ended = client.exchanges[streaming], client.exchanges[waiting]
        with trio.fail_after(LONG + SLACK):
            await client.receive_until(lambda: all(exchange.ended for exchange in ended))
        resets = {n: exchange.reset for n, exchange in client.exchanges.items() if exchange.reset}
        assert resets == {unfinished: h2.errors.ErrorCodes.CANCEL}
        assert client.exchanges[streaming].body.endswith(b"done")
        assert client.exchanges[waiting].body == b"done"
        await app.wait_until_none_reading()
        again = await client.get(b"/")  # the connection still serves
        with trio.fail_after(SLACK):
            await client.receive_until(lambda: client.exchanges[again].ended)


@pytest.mark.usefixtures("corrected")
async def test_an_http2_connection_whose_overdue_stream_was_reset_is_closed_once_idle() -> None:
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        client = await speaking_h2(tcp)
        await client.send(client.head(b"POST", b"/"), end=False)  # and never the body
        # Reset after request_timeout, then idle: closed after keep_alive_timeout.
        assert await closed_by_server(tcp, 2 * BOUND + SLACK) >= 2 * BOUND * 0.9


PING = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"  # a PING frame, 17 bytes


@pytest.mark.usefixtures("corrected")
async def test_a_client_that_sends_pings_and_reads_no_acknowledgement_is_closed() -> None:
    async with serving(App(), config(keep_alive_timeout=30)) as port:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        await sock.connect(("127.0.0.1", port))
        async with trio.SocketStream(sock) as tcp:
            await speaking_h2(tcp)
            # Until the server, stuck writing, stops reading (or, corrected, closes).
            with trio.move_on_after(5), suppress(trio.BrokenResourceError):
                await tcp.send_all(PING * 250_000)  # 4 MB, acknowledged with as much
            await trio.sleep(BOUND + SLACK)  # reading nothing: reading would set the server free
            assert tcp_state(tcp) != TCP_ESTABLISHED


TCP_ESTABLISHED = 1  # linux/tcp_states.h


def tcp_state(stream: trio.SocketStream) -> int:
    """The state of the connection, as this end's kernel sees it (without reading from it)."""
    info: bytes = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0]


@pytest.mark.usefixtures("corrected")
async def test_an_http2_answer_no_window_lets_out_is_reset() -> None:
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        client = await speaking_h2(tcp)
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        stream_id = await client.get(b"/")
        with trio.fail_after(3 * BOUND + SLACK):  # noticed within a bound, then a bound more
            await client.receive_until(lambda: client.exchanges[stream_id].reset is not None)
        assert client.exchanges[stream_id].reset == h2.errors.ErrorCodes.CANCEL
        assert client.exchanges[stream_id].body == b""
        await closed_by_server(tcp, BOUND + SLACK)  # idle


@pytest.mark.usefixtures("corrected")
async def test_connections_that_leave_an_answer_without_a_window_give_their_place_back() -> None:
    async with serving(App(), config(max_connections=3, keep_alive_timeout=30)) as port:
        for _ in range(3):
            async with await trio.open_tcp_stream("127.0.0.1", port) as tcp:
                client = await speaking_h2(tcp)
                client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
                exchange = client.exchanges[await client.get(b"/")]
                with trio.fail_after(SLACK):  # its head comes; its body waits for a window
                    await client.receive_until(partial(answered_head, exchange))
        with trio.fail_after(SLACK):
            while True:  # each place is given back once its app has ended
                if await answered(port):
                    break
                await trio.sleep(0.05)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("path", ["/stream", "/slow"])
async def test_an_http1_answer_longer_than_the_bounds_is_not_touched(path: str) -> None:
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        await tcp.send_all(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        assert (await read_answer(tcp)).endswith(b"done\r\n0\r\n\r\n")


@pytest.mark.usefixtures("corrected")
async def test_a_client_leaving_an_idle_connection_is_let_go_at_once() -> None:
    async with (
        serving(App(), config(keep_alive_timeout=30)) as port,  # upstream held it this long
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        await tcp.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        await read_answer(tcp)
        await trio.sleep(0.1)  # the server is back to waiting for the next request
        await tcp.send_eof()  # what a close sends; the server then closes its end, or not
        await closed_by_server(tcp, SLACK)


@pytest.mark.usefixtures("corrected")
async def test_past_the_cap_new_connections_are_closed_at_once_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Long bounds: a refused connection is closed by the cap, not by a timeout.
    bounds = config(max_connections=3, keep_alive_timeout=30, request_timeout=30)
    async with serving(App(), bounds) as port:
        with connections_closed_on_exit() as opened:
            held = [opened(await trio.open_tcp_stream("127.0.0.1", port)) for _ in range(3)]
            for stream in held:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                await read_answer(stream)
            with caplog.at_level(logging.WARNING, logger="hypercorn.error"):
                refused = [opened(burst_connect(port)) for _ in range(10)]  # as in an attack
                for stream in refused:
                    await closed_by_server(stream, 0.3)
        with trio.fail_after(SLACK):  # once the server has seen the held ones go, it serves
            while not await answered(port):
                pass
    cap_lines = [r for r in caplog.records if "max_connections" in r.getMessage()]
    assert len(cap_lines) == 1, caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.usefixtures("corrected")
async def test_shutdown_ends_within_graceful_timeout_while_a_client_does_not_read() -> None:
    shutdown = trio.Event()
    served = trio.Event()

    async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn.trio.serve(
            App(),
            config(request_timeout=30),  # only the shutdown ends it
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
        served.set()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve)
        port = int(binds[0].rsplit(":", 1)[1])
        async with await trio.open_tcp_stream("127.0.0.1", port) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await tcp.send_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
            assert (await tcp.receive_some(100)).startswith(b"HTTP/1.1 200")
            shutdown.set()
            with trio.move_on_after(BOUND + SLACK):
                await served.wait()
            ended_in_time = served.is_set()  # else it ends once this client closes, below
    assert ended_in_time, "the server waited on a client that does not read"


async def test_upstream_still_needs_the_correction() -> None:
    """Upstream hypercorn keeps a preface-only h2c connection open past every bound.

    This documents that flowtrux.http.hypercorn_fixes.connections is still needed. If this test
    fails after a hypercorn upgrade, upstream reclaims such connections: review that correction.
    """
    assert not hypercorn_fixes.is_applied(), "correction applied; cannot observe upstream"
    assert TCPServer.run is hypercorn_fixes.connections.FIXES[0].original
    async with (
        serving(App(), config()) as port,
        await trio.open_tcp_stream("127.0.0.1", port) as tcp,
    ):
        await speaking_h2(tcp)
        assert await still_open(tcp, 3 * BOUND)


# wsproto decodes this header as ASCII inside hypercorn's WebSocket handshake.
WEBSOCKET_HANDSHAKE_NOT_ASCII = (
    b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: \xff\r\n\r\n"
)


@pytest.mark.usefixtures("corrected")
async def test_a_connection_that_fails_is_closed_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(App(), config()) as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as tcp:
            await tcp.send_all(WEBSOCKET_HANDSHAKE_NOT_ASCII)
            await closed_by_server(tcp, SLACK)
        assert await answered(port)
    assert "a connection failed" in caplog.text


async def test_upstream_stops_serving_when_one_connection_fails() -> None:
    async def send_the_handshake() -> None:
        async with (
            serving(App(), config()) as port,
            await trio.open_tcp_stream("127.0.0.1", port) as tcp,
        ):
            await tcp.send_all(WEBSOCKET_HANDSHAKE_NOT_ASCII)
            await trio.sleep(SLACK)  # cancelled: the server stops meanwhile

    with pytest.raises(BaseExceptionGroup) as stopped:
        await send_the_handshake()
    assert stopped.group_contains(UnicodeDecodeError)
