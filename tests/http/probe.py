"""A raw ASGI app that records how it handles each request, for the tests of what an app receives
and when it is stopped (tests/http/test_app_inbox.py, test_h11_reading.py), and raw HTTP/1.1
(socket) and HTTP/2 (h2) clients, also used against the real app (tests/e2e/test_disconnects.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import h2.config
import h2.connection
import h2.errors
import h2.events
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

from tests.http.bare import RawApp, RequestScope

TIMEOUT = 5  # seconds: what "at once" may take on a slow machine
UPSTREAM_WAIT = 1  # seconds given to upstream to show it does not do it
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


class Probe(RawApp):
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

    async def request(
        self, scope: RequestScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
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
