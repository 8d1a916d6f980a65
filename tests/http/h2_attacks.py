"""A raw HTTP/2 client, and the requests with which one client stopped hypercorn 0.18 (see
flowtrux/http/hypercorn_fixes/h2_streams.py): for the tests of those corrections on bare
hypercorn (tests/http/test_h2_streams.py) and under the app (tests/e2e/test_h2_attacks.py)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import attrs
import h2.config
import h2.connection
import h2.events
import trio
import trustme
from hyperframe.frame import Frame, GoAwayFrame

TIMEOUT = 5
HEADER_LENGTH = 9  # every HTTP/2 frame starts with 9 bytes; the first 3 give the payload length
PRIORITY_FRAMES = 1_001
Head = list[tuple[bytes, bytes]]


@attrs.define
class Exchange:
    """What the server sent on one stream."""

    status: int | None = None
    body: bytes = b""
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code

    @property
    def over(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """A raw HTTP/2 client that records what the server sends on each stream, and honours a
    graceful GOAWAY: h2 itself closes its connection on GOAWAY and then refuses the DATA of the
    streams that the GOAWAY lets finish, so GOAWAY frames are kept from it."""

    def __init__(self, stream: trio.abc.Stream, authority: str, scheme: str) -> None:
        self.stream = stream
        self.authority = authority.encode()
        self.scheme = scheme.encode()
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False
        )
        self.conn = h2.connection.H2Connection(config)
        self.exchanges: dict[int, Exchange] = {}
        self.goaway: GoAwayFrame | None = None
        self.closed = False  # by the server
        self._unparsed = bytearray()

    def head(self, method: bytes, path: bytes, *fields: tuple[bytes, bytes]) -> Head:
        pseudo = [(b":method", method), (b":scheme", self.scheme), (b":path", path)]
        return [*pseudo, (b":authority", self.authority), *fields]

    async def send(self, head: Head, body: bytes | None = None, *, end: bool = True) -> int:
        """Open a stream with `head` (and `body`), ended unless not `end`; return its id."""
        stream_id: int = self.conn.get_next_available_stream_id()
        self.exchanges[stream_id] = Exchange()
        self.conn.send_headers(stream_id, head, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        await self.flush()
        return stream_id

    async def send_and_reset(self, head: Head) -> int:
        """Open a stream with `head` and reset it in the same write, as a proxy whose own client
        gave up at once does; return its id."""
        stream_id: int = self.conn.get_next_available_stream_id()
        self.exchanges[stream_id] = Exchange()
        self.conn.send_headers(stream_id, head)
        self.conn.reset_stream(stream_id)
        await self.flush()
        return stream_id

    async def get(self, path: bytes) -> int:
        return await self.send(self.head(b"GET", path))

    async def exchange(self, stream_id: int) -> Exchange:
        """Wait until the stream is over (ended or reset)."""
        await self.receive_until(lambda: self.exchanges[stream_id].over)
        return self.exchanges[stream_id]

    async def receive_until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(TIMEOUT):
            while not condition():
                assert not self.closed, "the server closed the connection"
                try:
                    data = bytes(await self.stream.receive_some())
                except trio.BrokenResourceError:  # reset by the server
                    data = b""
                if not data:
                    self.closed = True
                    continue
                for event in self.conn.receive_data(self._without_goaway(data)):
                    self._record(event)
                await self.flush()

    async def flush(self) -> None:
        with suppress(trio.BrokenResourceError):  # the server has closed: it is moot
            await self.stream.send_all(self.conn.data_to_send())

    def _without_goaway(self, data: bytes) -> bytes:
        self._unparsed += data
        passed = bytearray()
        while len(self._unparsed) >= HEADER_LENGTH:
            header = memoryview(bytes(self._unparsed[:HEADER_LENGTH]))
            frame, length = Frame.parse_frame_header(header)
            end = HEADER_LENGTH + length
            if len(self._unparsed) < end:
                break
            if isinstance(frame, GoAwayFrame):
                frame.parse_body(memoryview(bytes(self._unparsed[HEADER_LENGTH:end])))
                self.goaway = frame
            else:
                passed += self._unparsed[:end]
            del self._unparsed[:end]
        return bytes(passed)

    def _record(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.ResponseReceived(stream_id=stream_id, headers=headers):
                self.exchanges[stream_id].status = int(dict(headers)[b":status"])
            case h2.events.DataReceived(stream_id=stream_id, data=data):
                self.exchanges[stream_id].body += data
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            case h2.events.StreamEnded(stream_id=stream_id):
                self.exchanges[stream_id].ended = True
            case h2.events.StreamReset(stream_id=stream_id, error_code=error_code):
                self.exchanges[stream_id].reset = error_code


@asynccontextmanager
async def connected(port: int, authority: trustme.CA | None = None) -> AsyncIterator[H2Client]:
    """An HTTP/2 connection: h2c with prior knowledge, or TLS (ALPN h2) trusting `authority`."""
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
    if authority is not None:
        context = ssl.create_default_context()
        authority.configure_trust(context)
        context.set_alpn_protocols(["h2"])
        stream = trio.SSLStream(stream, context, server_hostname="127.0.0.1")
    async with stream:
        scheme = "http" if authority is None else "https"
        yield await speaking_h2(stream, f"127.0.0.1:{port}", scheme)


async def speaking_h2(
    stream: trio.abc.Stream, authority: str = "test", scheme: str = "http"
) -> H2Client:
    """An HTTP/2 client on `stream`, its preface and SETTINGS sent."""
    client = H2Client(stream, authority, scheme)
    client.conn.initiate_connection()
    await client.flush()
    return client


async def prioritize_streams_never_opened(client: H2Client) -> None:
    """Send 1,001 PRIORITY frames (14 KB) naming streams never opened, and not the next one."""
    first: int = client.conn.get_next_available_stream_id() + 2
    for stream_id in range(first, first + 2 * PRIORITY_FRAMES, 2):
        client.conn.prioritize(stream_id)
    await client.flush()


@attrs.frozen
class Unservable:
    """A request head the app cannot be given."""

    head: Callable[[H2Client], Head]
    status: int  # what the corrected server answers
    upstream_error: type[Exception]  # what stops upstream hypercorn


UNSERVABLE = {
    "CONNECT without :path": Unservable(
        lambda client: [(b":method", b"CONNECT"), (b":authority", client.authority)],
        501,
        UnboundLocalError,
    ),
    "non-ASCII :path": Unservable(
        lambda client: client.head(b"GET", "/café".encode()), 400, UnicodeDecodeError
    ),
    "non-ASCII :method": Unservable(
        lambda client: client.head("GÉT".encode(), b"/"), 400, UnicodeDecodeError
    ),
    "WebSocket with a non-ASCII subprotocol": Unservable(
        lambda client: client.head(
            b"CONNECT",
            b"/ws",
            (b":protocol", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-protocol", "chat, café".encode()),
        ),
        400,
        UnicodeDecodeError,
    ),
}
