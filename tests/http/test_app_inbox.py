"""What the app receives, and when it is stopped, against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/app_inbox.py), with raw HTTP/1.1 (socket) and HTTP/2 (h2) clients.

The request body reaches the app through a queue of 10 messages. Whatever that queue holds, the
app must learn that its client has left, an app whose client left before the answer ended must be
stopped, and an app that answers without reading its body must never hold up the connection.
Each `test_upstream_...` shows what hypercorn 0.18 does without the correction; if one fails
after a hypercorn upgrade, upstream has fixed that bug, and the correction and its tests can go.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import h2.config
import h2.connection
import h2.errors
import h2.events
import hypercorn.config
import hypercorn.trio
import pytest
import trio
import trio.testing
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from flowtrux.http import hypercorn_fixes
from flowtrux.http.hypercorn_fixes import app_inbox

TIMEOUT = 5  # seconds: what "at once" may take on a slow machine
UPSTREAM_WAIT = 1  # seconds given to upstream to show it does not do it
PIECES = [b"x" * 100] * 9  # 9 pieces and the end of the body: the queue's 10 messages
Head = Sequence[tuple[bytes, bytes]]


@attrs.frozen
class Seen:
    """How the app had handled a request, at some moment."""

    received: list[str]  # the types of the messages it had received
    cancelled: bool
    ended: bool


@attrs.define
class Handling:
    """How the app handled one request."""

    path: str
    received: list[str] = attrs.Factory(list)  # the types of the messages it received
    cancelled: bool = False
    ended: trio.Event = attrs.Factory(trio.Event)

    def seen(self) -> Seen:
        return Seen(list(self.received), self.cancelled, self.ended.is_set())

    async def read_until_disconnect(self, receive: ASGIReceiveCallable) -> None:
        while not self.received or self.received[-1] != "http.disconnect":
            self.received.append((await receive())["type"])

    async def read_body(self, receive: ASGIReceiveCallable) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] != "http.request":
                return bytes(body)
            body += message["body"]
            if not message["more_body"]:
                return bytes(body)


class Probe:
    """Raw ASGI app that records how it handled each request.

    - `/hold` reads nothing until `release` is set, then reads until `http.disconnect`;
    - `/answer` waits for `release`, answers without reading, then reads until
      `http.disconnect`;
    - `/work` reads its body, then works (like a password hash) until it is cancelled;
    - `/refuse` waits for `release`, then answers 413 without reading;
    - `/stream` sends the start of an answer, waits for `release`, then ends it;
    - `/size` reads its body and answers with its size;
    - any other path reads its body and sends it back.
    """

    def __init__(self) -> None:
        self.release = trio.Event()
        self.handled: list[Handling] = []

    def handling(self, path: str) -> Handling:
        return next(handling for handling in self.handled if handling.path == path)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "http"
        handling = Handling(scope["path"])
        self.handled.append(handling)
        try:
            await self._handle(handling, receive, send)
        except trio.Cancelled:
            handling.cancelled = True
            raise
        finally:
            handling.ended.set()

    async def _handle(
        self, handling: Handling, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        match handling.path:
            case "/hold":
                await self.release.wait()
                await handling.read_until_disconnect(receive)
            case "/answer":
                await self.release.wait()
                await answer(send, 200, b"answered")
                await handling.read_until_disconnect(receive)
            case "/work":
                await handling.read_body(receive)
                await trio.sleep_forever()
            case "/refuse":
                await self.release.wait()
                await answer(send, 413, b"too large")
            case "/stream":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"first,", "more_body": True})
                await self.release.wait()
                await send({"type": "http.response.body", "body": b"last", "more_body": False})
            case "/size":
                await answer(send, 200, b"%d" % len(await handling.read_body(receive)))
            case _:
                await answer(send, 200, await handling.read_body(receive))


async def answer(send: ASGISendCallable, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@asynccontextmanager
async def serving(app: Probe) -> AsyncIterator[int]:
    """Run hypercorn (trio worker) on an ephemeral port; yield the port; shut down on exit."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait)
        binds: list[str] = await nursery.start(serve)
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            shutdown.set()


def chunked_request(path: str, pieces: list[bytes], *headers: str) -> bytes:
    """An HTTP/1.1 POST with its body in `pieces` (chunked), and the end of the body."""
    head = "".join(f"{header}\r\n" for header in headers)
    request = f"POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n{head}\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return request.encode() + chunks + b"0\r\n\r\n"


async def read_until(stream: trio.SocketStream, needle: bytes) -> bytes:
    """What the server sends until `needle` (or until it closes)."""
    received = b""
    with trio.fail_after(TIMEOUT):
        while needle not in received:
            data = await stream.receive_some()
            if not data:
                break
            received += data
    return received


class H2Client:
    """Just enough of an HTTP/2 client (h2c, prior knowledge) to send requests, reset them and
    read the answers."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.statuses: dict[int, int] = {}
        self.informational: dict[int, list[int]] = {}
        self.bodies: dict[int, bytes] = {}
        self.ended: set[int] = set()

    async def request(
        self, path: str, pieces: list[bytes], *, end: bool = True, headers: Head = ()
    ) -> int:
        """Open a stream: a POST with its body in `pieces` (one DATA frame each), ended if
        `end`; return its id."""
        stream_id = self._open(path, pieces, end, headers)
        await self.flush()
        return stream_id

    async def abandon(self, path: str, pieces: list[bytes], *, headers: Head = ()) -> None:
        """A request with its whole body, reset in the same write."""
        stream_id = self._open(path, pieces, True, headers)
        await self.reset(stream_id)

    def _open(self, path: str, pieces: list[bytes], end: bool, headers: Head) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        head = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode())]
        head += [(b":authority", b"test"), *headers]
        self.conn.send_headers(stream_id, head, end_stream=end and not pieces)
        for index, piece in enumerate(pieces, 1):
            self.conn.send_data(stream_id, piece, end_stream=end and index == len(pieces))
        return stream_id

    async def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        await self.flush()

    async def until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(TIMEOUT):
            while not condition():
                data = await self.stream.receive_some()
                assert data, "the server closed the connection"
                for event in self.conn.receive_data(data):
                    self._record(event)
                await self.flush()

    async def answer(self, stream_id: int) -> tuple[int, bytes]:
        await self.until(lambda: stream_id in self.ended)
        return self.statuses[stream_id], self.bodies.get(stream_id, b"")

    async def flush(self) -> None:
        await self.stream.send_all(self.conn.data_to_send())

    def _record(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.InformationalResponseReceived(stream_id=stream_id, headers=headers):
                status = int(dict(headers)[b":status"])
                self.informational.setdefault(stream_id, []).append(status)
            case h2.events.ResponseReceived(stream_id=stream_id, headers=headers):
                self.statuses[stream_id] = int(dict(headers)[b":status"])
            case h2.events.DataReceived(stream_id=stream_id, data=data):
                self.bodies[stream_id] = self.bodies.get(stream_id, b"") + data
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            case h2.events.StreamEnded(stream_id=stream_id):
                self.ended.add(stream_id)


@asynccontextmanager
async def h2_connection(port: int) -> AsyncIterator[H2Client]:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        client = H2Client(stream)
        await client.flush()
        yield client


@pytest.fixture(autouse=True)
def all_corrections_but_the_inbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from hypercorn with every correction but `app_inbox`'s (without the
    others, upstream fails earlier, in other ways); monkeypatch puts things back afterwards."""
    for fix in hypercorn_fixes.FIXES:
        monkeypatch.setattr(fix.owner, fix.name, fix.corrected)
    for fix in app_inbox.FIXES:
        monkeypatch.setattr(fix.owner, fix.name, fix.original)


def corrected() -> None:
    hypercorn_fixes.apply()
    assert hypercorn_fixes.is_applied()


async def answered_then_told(http_version: str, wait: float) -> Seen:
    """A client sends a body in 9 pieces and its end; once it all waits in the queue, the app
    answers without reading it, then reads. Returns how the app handled it, once it ended or
    after `wait` seconds."""
    probe = Probe()
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        if http_version == "HTTP/1.1":
            await stream.send_all(chunked_request("/answer", PIECES))
        else:
            client = H2Client(stream)
            stream_id = await client.request("/answer", PIECES)
        await trio.testing.wait_all_tasks_blocked()  # the body waits in the app's queue
        probe.release.set()
        if http_version == "HTTP/1.1":
            assert b"answered" in await read_until(stream, b"answered")
        else:
            assert await client.answer(stream_id) == (200, b"answered")
        handling = probe.handling("/answer")
        with trio.move_on_after(wait):
            await handling.ended.wait()
        return handling.seen()


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2"])
async def test_an_app_learns_its_answer_is_over_whatever_its_queue_holds(
    http_version: str,
) -> None:
    corrected()
    handling = await answered_then_told(http_version, TIMEOUT)
    # The disconnect first: no one is left to answer, so the unread body is not worth reading.
    assert handling.received == ["http.disconnect"]
    assert not handling.cancelled  # it had answered: what it does afterwards is its own


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2"])
async def test_upstream_keeps_the_disconnect_behind_an_unread_body(http_version: str) -> None:
    """Upstream's last `send` of the app waits for room to put the disconnect, which the app
    never makes; the earlier correction dropped that disconnect instead."""
    handling = await answered_then_told(http_version, UPSTREAM_WAIT)
    assert "http.disconnect" not in handling.received
    assert not handling.ended


@asynccontextmanager
async def left(port: int, how: str) -> AsyncIterator[None]:
    """A client sends `/hold` a body in 9 pieces and its end, then leaves: `how` is `close`
    (HTTP/1.1), `reset` (HTTP/2 RST_STREAM, the connection stays open) or `drop` (HTTP/2, the
    connection closes)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        if how == "close":
            await stream.send_all(chunked_request("/hold", PIECES))
        else:
            client = H2Client(stream)
            stream_id = await client.request("/hold", PIECES)
        await trio.testing.wait_all_tasks_blocked()  # the body waits in the app's queue
        if how == "reset":
            await client.reset(stream_id)
            yield
            return
    yield


LEAVING = ["close", "reset", "drop"]


@pytest.mark.parametrize("how", LEAVING)
async def test_a_client_that_leaves_before_the_answer_stops_its_app(how: str) -> None:
    corrected()
    probe = Probe()
    async with serving(probe) as port, left(port, how):
        with trio.fail_after(TIMEOUT):
            await probe.handling("/hold").ended.wait()
    assert probe.handling("/hold").cancelled
    assert probe.handling("/hold").received == []  # cancelled before it read a byte


@pytest.mark.parametrize("how", LEAVING)
async def test_upstream_lets_the_app_of_a_client_that_left_go_on(how: str) -> None:
    probe = Probe()
    async with serving(probe) as port, left(port, how):
        await trio.sleep(UPSTREAM_WAIT)
        assert not probe.handling("/hold").ended.is_set()
        probe.release.set()


async def resets_during_work(requests: int, wait: float) -> list[Seen]:
    """On one HTTP/2 connection, `requests` times: a request with its body, then RST_STREAM once
    the app works on it (what a login attack does to argon2). Returns how the apps handled them
    once they all ended or after `wait` seconds, after checking that the connection still
    serves."""
    probe = Probe()
    async with serving(probe) as port, h2_connection(port) as client:
        for _ in range(requests):
            stream_id = await client.request("/work", [b'{"email": "a@b.c"}'])
            await trio.testing.wait_all_tasks_blocked()  # the app has read it and works
            await client.reset(stream_id)
        with trio.move_on_after(wait):
            for handling in probe.handled:
                await handling.ended.wait()
        handled = [handling.seen() for handling in probe.handled]
        assert await client.answer(await client.request("/echo", [b"still"])) == (200, b"still")
    return handled


async def test_resetting_streams_cancels_the_work_of_their_apps() -> None:
    corrected()
    handled = await resets_during_work(20, TIMEOUT)
    assert [(seen.ended, seen.cancelled) for seen in handled] == [(True, True)] * 20


async def test_upstream_works_on_for_streams_that_were_reset() -> None:
    handled = await resets_during_work(3, UPSTREAM_WAIT)
    assert [(seen.ended, seen.cancelled) for seen in handled] == [(False, False)] * 3


async def refused_then_next(wait: float) -> tuple[int, bytes] | None:
    """HTTP/2: once a body in 20 pieces fills the app's queue, the app refuses it (413) without
    reading it; then a request on the same connection. Returns the second answer, or None if it
    did not come within `wait` seconds."""
    probe = Probe()
    async with serving(probe) as port, h2_connection(port) as client:
        refused = await client.request("/refuse", [b"x" * 1000] * 20)
        await trio.testing.wait_all_tasks_blocked()  # the reader waits for room in the queue
        probe.release.set()
        assert await client.answer(refused) == (413, b"too large")
        with trio.move_on_after(wait):
            return await client.answer(await client.request("/echo", [b"next"]))
    return None


async def test_an_app_that_refuses_its_body_unread_leaves_the_connection_serving() -> None:
    corrected()
    assert await refused_then_next(TIMEOUT) == (200, b"next")


async def test_upstream_blocks_the_connection_behind_a_body_no_one_reads() -> None:
    assert await refused_then_next(UPSTREAM_WAIT) is None
