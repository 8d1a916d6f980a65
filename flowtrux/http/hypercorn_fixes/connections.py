"""Connections: every one is reclaimed, none past a cap, and none holds up the shutdown.

hypercorn 0.18's trio worker bounds a connection only by its idle task (`keep_alive_timeout`),
which `TCPServer.run` starts and the protocols stop and restart with `Updated` events, and by
`read_timeout`, which must stay unset because it also ends live streams. Measured:

- an h2c connection that sends the preface and never opens a stream stays open for good (the
  `PRI *` line counts as a request and stops the idle task), as does one whose only stream the
  client reset (nothing restarts it): 1,101 such connections pinned a server at its file
  descriptor limit, and trio then logged a traceback every 100 ms;
- a request whose body never ends stays open for good (110 s watched), on HTTP/1.1 and HTTP/2;
- a client that closes an idle connection leaves its socket open until `keep_alive_timeout`
  (the idle task outlives the reader, and the socket is closed after the task group);
- a write to an HTTP/1.1 client that stopped reading is shielded from cancellation and the
  socket is closed only after the task group ends, so at shutdown `graceful_timeout` cannot end
  it: the process exited only when the client closed (40 s);
- `run` lets any exception of one connection out, and under the trio worker that ends `serve`:
  a WebSocket handshake whose `Sec-WebSocket-Protocol` is not ASCII (wsproto decodes it) stopped
  the process, exit code 1, with one request;
- a client that asks for something and never takes the answer holds its connection for good: a
  flood of PINGs (or SETTINGS) from a client that does not read leaves hypercorn's reader stuck
  writing their acknowledgements, and a client that grants no flow-control window (`SETTINGS
  _INITIAL_WINDOW_SIZE` 0) leaves an answer waiting for ever, on any route.

The correction replaces `TCPServer.run`. A watchdog, derived from the protocol's own state
rather than from `Updated` events, ends a connection that waits on its client too long: idle,
after `keep_alive_timeout` (at once when the server shuts down; a new connection gets
`request_timeout` at most); a request whose headers or body are not all there after
`request_timeout` (HTTP/1.1: the connection is closed; HTTP/2: the stream is reset). A request
the app is answering, or waiting to answer, is never the client's delay; but a client that has
taken none of what is written to it (a piece of 64 KiB at most) for `request_timeout` has
stopped reading, and its connection is closed; and an HTTP/2 answer that has waited as long for
the client to grant it a flow-control window is reset. The watchdog lives
beside the connection's task group, so when the server gives up on the connection it closes
the socket, which ends a shielded write stuck on a client that does not read. Past
`max_connections` open at once, a new connection is closed at once, with one log line per
episode at the cap. An exception met by one connection is logged, and ends that connection.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from math import inf

import attrs
import h2.errors
import h11
import trio
from h2.stream import StreamState
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import parse_socket_addr

from flowtrux.http.hypercorn_fixes.fix import Fix
from flowtrux.limiters import taken

EPISODE_ENDS_AT = 0.9  # of the cap: a new episode is logged once the count has fallen this far
WRITE_PIECE = 64 * 1024  # bytes written at a time: each piece taken is the client's progress


@attrs.frozen
class Bounds:
    """What a server's connections may hold: `request_timeout` seconds for a request to arrive
    whole; `max_connections` open at once (None: no cap)."""

    request_timeout: float = 30.0
    max_connections: int | None = None


_BOUNDS: weakref.WeakKeyDictionary[Config, Bounds] = weakref.WeakKeyDictionary()


def bound_connections(config: Config, bounds: Bounds) -> None:
    """Bound the connections of servers started with `config` (others get `Bounds()`)."""
    _BOUNDS[config] = bounds


@attrs.define(eq=False)
class Admission:
    """The connections one worker has open, against its cap."""

    limit: int | None
    open: int = 0
    refused: int = 0  # in the current episode at the cap

    def admit(self) -> bool:
        if self.limit is not None and self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
        if self.limit is not None and self.open <= self.limit * EPISODE_ENDS_AT:
            self.refused = 0


_ADMISSIONS: weakref.WeakKeyDictionary[WorkerContext, Admission] = weakref.WeakKeyDictionary()


class Owed(enum.Enum):
    """What a connection waits on its client for."""

    NEXT_REQUEST = "its next request"
    REQUEST = "the rest of an HTTP/1.1 request"
    STREAM = "the rest of an HTTP/2 stream's request"
    WINDOW = "a flow-control window for an HTTP/2 stream's answer"

    @property
    def of_a_stream(self) -> bool:
        """Overdue, it ends that HTTP/2 stream; any other ends the connection."""
        return self in (Owed.STREAM, Owed.WINDOW)


@attrs.frozen
class Wait:
    """`owed` after `number` requests (NEXT_REQUEST), or for request or stream `number`."""

    owed: Owed
    number: int


def _waits(protocol: H11Protocol | H2Protocol) -> set[Wait]:
    if isinstance(protocol, H11Protocol):
        return _h11_waits(protocol)
    return _h2_waits(protocol)


def _h11_waits(protocol: H11Protocol) -> set[Wait]:
    connection, served = protocol.connection, protocol.keep_alive_requests
    if not isinstance(connection, h11.Connection):  # a WebSocket
        return set()
    if connection.their_state is h11.SEND_BODY and connection.our_state is h11.SEND_RESPONSE:
        return {Wait(Owed.REQUEST, served)}
    if connection.their_state is h11.IDLE and connection.our_state is h11.IDLE:
        started = connection.trailing_data[0].lstrip(b"\r\n") != b""  # empty lines are ignored
        return {Wait(Owed.REQUEST, served + 1) if started else Wait(Owed.NEXT_REQUEST, served)}
    return set()


def _h2_waits(protocol: H2Protocol) -> set[Wait]:
    if protocol.closed:
        return set()
    if not protocol.streams:
        return {Wait(Owed.NEXT_REQUEST, protocol.keep_alive_requests)}
    bodies = {Wait(Owed.STREAM, n) for n in protocol.streams if _awaits_body(protocol, n)}
    windows = {Wait(Owed.WINDOW, n) for n in protocol.streams if _awaits_window(protocol, n)}
    return bodies | windows


def _awaits_body(protocol: H2Protocol, stream_id: int) -> bool:
    """The client still owes the body, and the app has not started answering."""
    stream, h2_stream = protocol.streams[stream_id], protocol.connection.streams.get(stream_id)
    return (
        isinstance(stream, HTTPStream)
        and stream.state is ASGIHTTPState.REQUEST
        and h2_stream is not None
        and h2_stream.state_machine.state is StreamState.OPEN
    )


def _awaits_window(protocol: H2Protocol, stream_id: int) -> bool:
    """The answer has data to send and the client's flow-control window has no room for it."""
    buffer, h2_stream = (
        protocol.stream_buffers.get(stream_id),
        protocol.connection.streams.get(stream_id),
    )
    return (
        buffer is not None
        and len(buffer.buffer) > 0
        and h2_stream is not None
        and not h2_stream.closed
        and protocol.connection.local_flow_control_window(stream_id) <= 0
    )


@attrs.define(eq=False)
class Watchdog:
    """Ends a connection, or an HTTP/2 stream, that waits on its client for too long; closes
    the socket when the server gives up on the connection (a cancellation of `watch`)."""

    server: TCPServer
    request_timeout: float
    _since: dict[Wait, float] = attrs.field(factory=dict)
    _busy_since: float | None = None
    _writing_since: float | None = None
    _alarm: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def update(self) -> None:
        """Take in the protocol's state: call after anything that may have changed it."""
        now = trio.current_time()
        self._since = {wait: self._since.get(wait, now) for wait in self._current_waits()}
        self._alarm.deadline = self._deadline()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """While the reader hands data to the protocol (which may wait on the app), the time is
        not the client's."""
        self._busy_since = started = trio.current_time()
        try:
            yield
        finally:
            elapsed = trio.current_time() - started
            self._since = {wait: since + elapsed for wait, since in self._since.items()}
            self._busy_since = None
            self.update()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """While a piece of what is written waits for the client to take it: its time."""
        self._writing_since = trio.current_time()
        self._alarm.deadline = self._deadline()
        try:
            yield
        finally:
            self._writing_since = None
            self.update()

    async def watch(self) -> None:
        """Until cancelled; then close the socket, which also ends a write stuck on a client
        that does not read (hypercorn shields writes from cancellation)."""
        try:
            while not self._expire_overdue():
                self._alarm = trio.CancelScope()
                self.update()
                with self._alarm:
                    await self.server.context.terminated.wait()
                    self.update()  # shutting down: idle connections are due now
                    await trio.sleep_forever()
        finally:
            await trio.aclose_forcefully(self.server.stream)

    def _expire_overdue(self) -> bool:
        """Reset the overdue HTTP/2 streams; True when the whole connection is overdue."""
        now = trio.current_time()
        if self._writing_since is not None and self._writing_since + self.request_timeout <= now:
            return True  # the client has stopped reading
        if self._busy_since is not None:
            return False  # the reader waits on the app; `busy` will update
        self.update()
        overdue = [wait for wait, since in self._since.items() if since + self._bound(wait) <= now]
        if not all(wait.owed.of_a_stream for wait in overdue):
            return True  # `watch` returns and closes the socket: the reader then ends it all
        for wait in overdue:
            self._reset(wait.number)
        return False

    def _reset(self, stream_id: int) -> None:
        protocol = self.server.protocol.protocol
        assert isinstance(protocol, H2Protocol)
        protocol.connection.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.server._task_group.spawn(self._forget_stream, protocol, stream_id)

    async def _forget_stream(self, protocol: H2Protocol, stream_id: int) -> None:
        """What hypercorn does when the client resets a stream: the app hears `http.disconnect`,
        the stream's buffer is let go; then the reset goes out. Then the connection may be idle,
        which no `Updated` would tell."""
        await protocol._close_stream(stream_id)
        await protocol._window_updated(stream_id)
        await protocol._flush()
        self.update()

    def _current_waits(self) -> set[Wait]:
        return _waits(self.server.protocol.protocol)

    def _deadline(self) -> float:
        """The next due; and at the latest `request_timeout` from now, to look again at what
        nothing reports (an answer's data that no window lets out)."""
        writing = inf if self._writing_since is None else self._writing_since + self.request_timeout
        look_again = trio.current_time() + self.request_timeout
        if self._busy_since is not None:
            return min(writing, look_again)
        dues = (since + self._bound(wait) for wait, since in self._since.items())
        return min(*dues, writing, look_again)

    def _bound(self, wait: Wait) -> float:
        if wait.owed is not Owed.NEXT_REQUEST:
            return self.request_timeout
        if self.server.context.terminated.is_set():
            return 0.0
        keep_alive: float = self.server.config.keep_alive_timeout
        return keep_alive if wait.number > 0 else min(keep_alive, self.request_timeout)


async def _run(self: TCPServer) -> None:
    admission = _ADMISSIONS.setdefault(
        self.context, Admission(_BOUNDS.get(self.config, Bounds()).max_connections)
    )
    if not admission.admit():
        first_refused = admission.refused == 1  # before a checkpoint lets others be refused
        await trio.aclose_forcefully(self.stream)
        if first_refused:
            await self.config.log.warning(
                f"{admission.open} connections open, the most this process takes"
                " (max_connections): closing new ones at once until some end"
            )
        return
    try:
        async with trio.open_nursery() as beside:
            await _serve(self, beside)
            beside.cancel_scope.cancel()
    except* Exception:  # a bug met by one connection ends that connection, not the server
        await self.config.log.exception("a connection failed; it is closed, the server goes on")
    finally:
        await trio.aclose_forcefully(self.stream)  # upstream leaves it open on a failed handshake
        admission.release()


async def _serve(self: TCPServer, beside: trio.Nursery) -> None:
    """Upstream's `run`, with a watchdog started in `beside` in place of the idle task."""
    try:
        try:
            with trio.fail_after(self.config.ssl_handshake_timeout):
                await self.stream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError):
            return  # Handshake failed
        alpn_protocol = self.stream.selected_alpn_protocol()
        socket = self.stream.transport_stream.socket
        ssl = True
    except AttributeError:  # Not SSL
        alpn_protocol = "http/1.1"
        socket = self.stream.socket
        ssl = False

    try:
        client = parse_socket_addr(socket.family, socket.getpeername())
        server = parse_socket_addr(socket.family, socket.getsockname())

        async with TaskGroup() as task_group:
            self._task_group = task_group
            watchdog = Watchdog(self, _BOUNDS.get(self.config, Bounds()).request_timeout)
            self.protocol = ProtocolWrapper(
                self.app,
                self.config,
                self.context,
                task_group,
                ConnectionState(self.state),
                ssl,
                client,
                server,
                partial(_send, self, watchdog),
                alpn_protocol,
            )
            beside.start_soon(watchdog.watch)
            await self.protocol.initiate()
            await _read(self, watchdog)
    except OSError:
        pass
    finally:
        await self._close()


async def _send(self: TCPServer, watchdog: Watchdog, event: Event) -> None:
    """Upstream's `protocol_send`, with the watchdog told of `Updated` instead of the idle
    task."""
    if isinstance(event, RawData):
        async with taken(self.send_lock):  # the write checkpoints
            try:
                # A write cut short would corrupt the framing; one stuck on a client that
                # does not read ends when the watchdog closes the socket.
                with trio.CancelScope(shield=True):
                    await _send_all(self.stream, event.data, watchdog)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
    elif isinstance(event, Closed):
        await self._close()
        await self.protocol.handle(Closed())
    elif isinstance(event, Updated):
        watchdog.update()


async def _send_all(stream: trio.abc.SendStream, data: bytes, watchdog: Watchdog) -> None:
    whole = memoryview(data)
    for start in range(0, len(whole), WRITE_PIECE):
        with watchdog.writing():
            await stream.send_all(whole[start : start + WRITE_PIECE])


async def _read(self: TCPServer, watchdog: Watchdog) -> None:
    """Upstream's `_read_data`, telling the watchdog of each chunk handled."""
    while True:
        try:
            with trio.fail_after(self.config.read_timeout or inf):
                data = await self.stream.receive_some(MAX_RECV)
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
            break
        else:
            with watchdog.busy():
                await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
    await self.protocol.handle(Closed())


FIXES = (
    Fix(
        TCPServer,
        "run",
        """await self.idle_task.restart(self._task_group, self._idle_timeout)
        await self._read_data()
        except OSError:
            pass
        finally:
            await self._close()""",
        _run,
    ),
)
