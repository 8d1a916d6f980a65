"""HTTP/2 streams against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/h2_streams.py): what one client can do to its connection and to
the server.

A raw h2 client sends a few frames. Afterwards the server must still serve, and the other
streams on the connection must still end properly. Each `test_upstream_...` shows what hypercorn
0.18 does without the corrections. If one of them fails after a hypercorn upgrade, upstream has
fixed that bug, and the matching correction and its tests can go.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

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
import trustme
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from hyperframe.frame import Frame, GoAwayFrame
from priority import priority

from flowtrux.http import hypercorn_fixes

TIMEOUT = 5
HEADER_LENGTH = 9  # every HTTP/2 frame starts with 9 bytes; the first 3 give the payload length
PRIORITY_FRAMES = 1_001
MAX_REQUESTS = 10  # keep_alive_max_requests in these tests (hypercorn's default: 1,000)
STREAM_LIMIT: int = hypercorn.config.Config.h2_max_concurrent_streams  # 100
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
Head = list[tuple[bytes, bytes]]


class App:
    """Raw ASGI app: `/held` sends `first,`, then `done` once `release` is set; any other path
    gets `done` at once."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.held_finished = 0

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        held = scope["path"] == "/held"
        if held:
            await send({"type": "http.response.body", "body": b"first,", "more_body": True})
            await self.release.wait()
        await send({"type": "http.response.body", "body": b"done", "more_body": False})
        self.held_finished += held


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

    async def send(self, head: Head, body: bytes | None = None) -> int:
        """Open a stream with `head` (and `body`); return its id."""
        stream_id: int = self.conn.get_next_available_stream_id()
        self.exchanges[stream_id] = Exchange()
        self.conn.send_headers(stream_id, head, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=True)
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
        client = H2Client(stream, f"127.0.0.1:{port}", scheme)
        client.conn.initiate_connection()
        await client.flush()
        yield client


@asynccontextmanager
async def serving(
    app: App, authority: trustme.CA | None = None, **settings: Any
) -> AsyncIterator[int]:
    """Run hypercorn (trio worker) on an ephemeral port, with TLS if there is an `authority` to
    issue its certificate; yield the port; shut down on exit."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    for name, value in settings.items():
        setattr(config, name, value)
    with certificate(authority) as pem:
        if pem is not None:
            config.certfile = config.keyfile = pem
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            serve = functools.partial(
                hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait
            )
            binds: list[str] = await nursery.start(serve)
            try:
                yield int(binds[0].rsplit(":", 1)[1])
            finally:
                shutdown.set()


@contextmanager
def certificate(authority: trustme.CA | None) -> Iterator[str | None]:
    """A PEM file with a key and a certificate for 127.0.0.1 issued by `authority`, if any."""
    if authority is None:
        yield None
        return
    with authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.tempfile() as pem:
        yield pem


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
}
HELD = Exchange(200, b"first,done", ended=True)


@pytest.fixture(autouse=True)
def upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test from upstream hypercorn (serving elsewhere in the suite applies the
    corrections for the whole process); monkeypatch puts things back afterwards."""
    for fix in hypercorn_fixes.FIXES:
        monkeypatch.setattr(fix.owner, fix.name, fix.original)


@pytest.fixture
def corrected(upstream: None) -> None:
    hypercorn_fixes.apply()
    assert hypercorn_fixes.is_applied()


@pytest.fixture(params=["h2c", "TLS"])
def authority(request: pytest.FixtureRequest) -> trustme.CA | None:
    """The certificate authority of a TLS server, or None for h2c (prior knowledge)."""
    return trustme.CA() if request.param == "TLS" else None


async def held_open(client: H2Client) -> int:
    """Open a stream to /held and wait for its first chunk."""
    held = await client.get(b"/held")
    await client.receive_until(lambda: client.exchanges[held].body == b"first,")
    return held


async def answered(client: H2Client) -> bool:
    return await client.exchange(await client.get(b"/")) == Exchange(200, b"done", ended=True)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("case", UNSERVABLE.values(), ids=list(UNSERVABLE))
async def test_a_request_the_app_cannot_be_given_is_answered_alone(
    case: Unservable, authority: trustme.CA | None
) -> None:
    app = App()
    async with serving(app, authority) as port:
        async with connected(port, authority) as client:
            held = await held_open(client)
            answer = await client.exchange(await client.send(case.head(client)))
            assert (answer.status, answer.ended) == (case.status, True)
            assert await answered(client)
            app.release.set()
            assert await client.exchange(held) == HELD
            assert client.goaway is None
        async with connected(port, authority) as another:
            assert await answered(another)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("request_line", [b"GET /caf\xc3\xa9 HTTP/1.1", b"G\xc3\x89T / HTTP/1.1"])
async def test_http1_answers_400_to_the_same_bytes(request_line: bytes) -> None:
    """The HTTP/1.1 side (h11) refuses a request target or method that is not ASCII."""
    async with serving(App()) as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
            response = b""
            with trio.fail_after(TIMEOUT):
                while chunk := await stream.receive_some():
                    response += chunk
        assert response.startswith(b"HTTP/1.1 400 ")
        async with connected(port) as client:
            assert await answered(client)


@pytest.mark.usefixtures("corrected")
async def test_priority_for_streams_never_opened_is_ignored_beyond_the_limit() -> None:
    app = App()
    async with serving(app) as port, connected(port) as client:
        held = await held_open(client)
        await prioritize_streams_never_opened(client)
        assert await answered(client)  # its stream found the priority tree full
        await prioritize_streams_never_opened(client)
        assert await answered(client)
        app.release.set()
        assert await client.exchange(held) == HELD
        assert client.goaway is None


@pytest.mark.usefixtures("corrected")
async def test_a_connection_retires_gracefully_after_its_last_request() -> None:
    app = App()
    settings = {"keep_alive_max_requests": MAX_REQUESTS, "keep_alive_timeout": 0.5}
    async with serving(app, None, **settings) as port, connected(port) as client:
        held = await held_open(client)
        for _ in range(MAX_REQUESTS - 2):
            assert await answered(client)
        last = await client.get(b"/")
        await client.receive_until(lambda: client.goaway is not None)
        assert client.goaway is not None
        assert (client.goaway.last_stream_id, client.goaway.error_code) == (last, 0)
        assert await client.exchange(last) == Exchange(200, b"done", ended=True)

        late = await client.get(b"/")  # as if sent before the GOAWAY arrived
        assert (await client.exchange(late)).reset == REFUSED_STREAM
        app.release.set()
        assert await client.exchange(held) == HELD
        await client.receive_until(lambda: client.closed)  # idle: keep_alive_timeout closes it
        async with connected(port) as another:
            assert await answered(another)


@pytest.mark.usefixtures("corrected")
async def test_a_stream_over_the_limit_is_refused_alone() -> None:
    app = App()
    async with serving(app) as port, connected(port) as client:
        # All the HEADERS go out before the client reads the server's SETTINGS, as a proxy's
        # first burst on a fresh connection does.
        held = [await client.get(b"/held") for _ in range(STREAM_LIMIT)]
        extra = await client.get(b"/held")
        assert (await client.exchange(extra)).reset == REFUSED_STREAM
        await client.receive_until(lambda: all(client.exchanges[s].body for s in held))
        app.release.set()
        assert [await client.exchange(stream_id) for stream_id in held] == [HELD] * STREAM_LIMIT
        assert await answered(client)
        assert client.goaway is None


@pytest.mark.parametrize("case", UNSERVABLE.values(), ids=list(UNSERVABLE))
async def test_upstream_stops_serving_on_such_a_request(case: Unservable) -> None:
    with pytest.RaisesGroup(case.upstream_error, flatten_subgroups=True):
        async with serving(App()) as port, connected(port) as client:
            await client.send(case.head(client))
            with trio.fail_after(TIMEOUT):
                await trio.sleep_forever()  # until the server's failure cancels this


async def test_upstream_stops_serving_on_priority_for_streams_never_opened() -> None:
    with pytest.RaisesGroup(priority.TooManyStreamsError, flatten_subgroups=True):
        async with serving(App()) as port, connected(port) as client:
            await prioritize_streams_never_opened(client)
            with trio.fail_after(TIMEOUT):
                await trio.sleep_forever()  # until the server's failure cancels this


async def test_upstream_freezes_the_connection_after_its_last_request() -> None:
    app = App()
    async with (
        serving(app, keep_alive_max_requests=MAX_REQUESTS) as port,
        connected(port) as client,
    ):
        held = await held_open(client)
        for _ in range(MAX_REQUESTS - 1):
            assert await answered(client)
        unanswered = await client.get(b"/")  # request 1,001 with hypercorn's default
        await client.receive_until(lambda: client.goaway is not None)
        app.release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert app.held_finished == 1  # as far as the app knows, it sent everything
        client.conn.ping(b"anything")  # upstream h2 refuses it, and hypercorn closes
        await client.flush()
        await client.receive_until(lambda: client.closed)
        assert client.exchanges[held] == Exchange(200, b"first,")  # no `done`, no END_STREAM
        assert (client.exchanges[unanswered].body, client.exchanges[unanswered].ended) == (
            b"",
            False,
        )


async def test_upstream_ends_the_connection_for_one_stream_over_the_limit() -> None:
    async with serving(App()) as port, connected(port) as client:
        held = [await client.get(b"/held") for _ in range(STREAM_LIMIT + 1)]
        await client.receive_until(lambda: client.closed)
        assert client.goaway is not None
        assert client.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert not any(client.exchanges[stream_id].over for stream_id in held)
