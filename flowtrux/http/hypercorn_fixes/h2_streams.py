"""HTTP/2 streams: which ones hypercorn opens, which it refuses, and how a connection retires.

Under the trio worker an exception in one connection ends `serve`, and the process with it. In
hypercorn 0.18's `H2Protocol`, one client could stop the process or cut off every other stream
on its connection:

- DATA for a stream hypercorn has closed (the app answered 413 or 401 before the body had all
  arrived) raised `KeyError` (upstream pgjones/hypercorn#329). Such data is now dropped and its
  flow-control window given back.
- Some request heads cannot become an ASGI scope, and `_create_stream` raised on them, one
  HEADERS frame of about 100 bytes each. An ordinary CONNECT has no `:path` (RFC 9113 §8.5; h2
  accepts it), which left `raw_path` unset. A `:method` or path that is not ASCII failed to
  decode. A WebSocket over HTTP/2 (an extended CONNECT, RFC 8441) whose `Sec-WebSocket-Protocol`,
  `-Extensions` or `Connection` is not ASCII failed the same way in wsproto. Such a request is
  now answered without the app: 400, or 501 for a tunnel.
- A client may reset a stream in the same packet that opens it (a proxy whose own client gave
  up at once). h2 has then closed the stream before its HEADERS are handled, and refusing or
  answering it raised `StreamClosedError`, which ended the connection and every stream on it.
  Such a stream is now left alone: the client has ended it already.
- Each PRIORITY frame for a stream that was never opened adds a node to hypercorn's priority
  tree, which holds 1,000 nodes; one more raised `priority.TooManyStreamsError` (1,001 frames,
  14 KB). Beyond the limit the signal is now ignored: RFC 9113 §5.3.2 deprecates it, and a
  server may ignore it. A new stream that finds the tree full makes room by dropping the nodes
  of streams that have no response left to send.
- After `keep_alive_max_requests` (1,000) requests, upstream called h2's `close_connection()`.
  That moves h2's state machine to CLOSED, so every later send on the connection raised
  `ProtocolError`, which hypercorn swallowed: open streams (an SSE stream) stopped without
  END_STREAM, and request 1,001 was never answered. The connection now retires as RFC 9113 §6.8
  describes. A GOAWAY names the last request taken, written here so that h2 goes on sending. The
  open streams finish, and streams opened later are refused with REFUSED_STREAM (safe to
  retry). The idle connection is then closed by the client or by hypercorn's keep-alive timeout,
  not at once: a client frame arriving after the close would reset the TCP connection, and the
  kernel would drop what it had not yet delivered of the last response.
- h2 enforced the advertised MAX_CONCURRENT_STREAMS (100) as a connection error. A client that
  opened stream 101 before it had read the SETTINGS (a proxy on a fresh connection) got a
  GOAWAY, and its 100 streams were cut off. Only that stream is now refused (REFUSED_STREAM), as
  RFC 9113 §5.1.2 allows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import cast

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hypercorn.events import RawData, Updated
from hypercorn.protocol import h2 as hypercorn_h2
from hyperframe.frame import GoAwayFrame
from priority import priority

from flowtrux.http.hypercorn_fixes.fix import Fix

H2Protocol = hypercorn_h2.H2Protocol
_upstream_handle_events = H2Protocol._handle_events
_upstream_initiate = H2Protocol.initiate
_upstream_create_stream = H2Protocol._create_stream
_upstream_priority_updated = H2Protocol._priority_updated

MAX_CONCURRENT_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR


async def _handle_events(self: H2Protocol, events: list[h2.events.Event]) -> None:
    for event in events:  # one at a time: a stream may close while earlier events are handled
        if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
            self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.RequestReceived):
            await _request_received(self, event)
        else:
            await _upstream_handle_events(self, [event])
    await self._flush()


async def _request_received(self: H2Protocol, request: h2.events.RequestReceived) -> None:
    headers = cast(Sequence[tuple[bytes, bytes]], request.headers)  # hypercorn asks h2 for bytes
    if self.context.terminated.is_set():  # as upstream: the server is shutting down
        self.connection.update_settings({MAX_CONCURRENT_STREAMS: 0})
        with _unless_reset_already():
            self.connection.reset_stream(request.stream_id)
    elif _retired(self) or len(self.streams) >= self.config.h2_max_concurrent_streams:
        with _unless_reset_already():
            self.connection.reset_stream(request.stream_id, REFUSED_STREAM)
    elif (status := _status_without_app(headers)) is not None:
        with _unless_reset_already():
            _answer_without_app(self, request, status)
    else:
        await self._create_stream(request)
        await self.send(Updated(idle=False))
        if _retired(self):
            await _send_goaway(self, last_stream_id=request.stream_id)


def _retired(self: H2Protocol) -> bool:
    return self.keep_alive_requests >= self.config.keep_alive_max_requests


def _unless_reset_already() -> contextlib.AbstractContextManager[None]:
    """For what is sent on a stream whose HEADERS are being handled: the client may have reset
    it in the same packet, and then h2 has closed it (and may have forgotten it)."""
    return contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError)


WEBSOCKET_LISTS = frozenset({b"connection", b"sec-websocket-extensions", b"sec-websocket-protocol"})


def _status_without_app(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The status for a request the app cannot be given; None for one it can. hypercorn decodes
    the method and the path (before `?`) as ASCII for the ASGI scope, and for a CONNECT (always
    a WebSocket to hypercorn) wsproto decodes the comma-separated WebSocket headers as ASCII."""
    fields = dict(headers)  # h2 has checked the pseudo-headers: each at most once, `:method` set
    path = fields.get(b":path")
    if path is None:  # an ordinary CONNECT (RFC 9113 §8.5): a tunnel, which hypercorn cannot be
        return 501
    if not (fields[b":method"] + path.partition(b"?")[0]).isascii():
        return 400
    if fields[b":method"] == b"CONNECT" and not all(
        value.isascii() for name, value in headers if name in WEBSOCKET_LISTS
    ):
        return 400
    return None


def _answer_without_app(self: H2Protocol, request: h2.events.RequestReceived, status: int) -> None:
    headers = [(b":status", b"%d" % status), (b"content-length", b"0")]
    headers += self.config.response_headers("h2")
    self.connection.send_headers(request.stream_id, headers, end_stream=True)
    if request.stream_ended is None:  # RFC 9113 §8.1: tells the client to stop sending the body
        self.connection.reset_stream(request.stream_id, NO_ERROR)


async def _send_goaway(self: H2Protocol, last_stream_id: int) -> None:
    """Tell the client that streams after `last_stream_id` will not be processed. Written by hand:
    h2's `close_connection()` also ends h2's own sending, and the open streams with it."""
    goaway = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=NO_ERROR)
    await self.send(RawData(data=goaway.serialize()))


async def _initiate(
    self: H2Protocol,
    headers: list[tuple[bytes, bytes]] | None = None,
    settings: bytes | None = None,
) -> None:
    await _upstream_initiate(self, headers, settings)
    # Our SETTINGS frame has gone out with the limit. h2 would enforce it as a connection error;
    # `_request_received` enforces it one stream at a time instead.
    self.connection.local_settings.pop(MAX_CONCURRENT_STREAMS, None)


async def _create_stream(self: H2Protocol, request: h2.events.RequestReceived) -> None:
    with contextlib.suppress(priority.DuplicateStreamError):  # a PRIORITY frame came first
        _insert_blocked(self, request.stream_id)
    await _upstream_create_stream(self, request)  # finds it in the tree, as after PRIORITY


def _insert_blocked(self: H2Protocol, stream_id: int) -> None:
    try:
        self.priority.insert_stream(stream_id)
    except priority.TooManyStreamsError:  # full of streams never opened, named by PRIORITY
        self.priority = _tree_of_streams_with_a_response(self)
        self.priority.insert_stream(stream_id)
    self.priority.block(stream_id)


def _tree_of_streams_with_a_response(self: H2Protocol) -> priority.PriorityTree:
    """A tree of the streams that may still have something to send, each unblocked: the send
    task blocks again the ones that have nothing."""
    tree = priority.PriorityTree()
    for stream_id in self.stream_buffers:
        tree.insert_stream(stream_id)
    return tree


async def _priority_updated(self: H2Protocol, event: h2.events.PriorityUpdated) -> None:
    with contextlib.suppress(priority.TooManyStreamsError):  # a signal a server may ignore
        await _upstream_priority_updated(self, event)


FIXES = (
    Fix(
        H2Protocol,
        "_handle_events",
        "await self.streams[event.stream_id].handle(Body(",
        _handle_events,
    ),
    Fix(
        H2Protocol,
        "initiate",
        "self.connection.initiate_connection()",
        _initiate,
    ),
    Fix(
        H2Protocol,
        "_create_stream",
        "except priority.DuplicateStreamError:",
        _create_stream,
    ),
    Fix(
        H2Protocol,
        "_priority_updated",
        "except priority.MissingStreamError:",
        _priority_updated,
    ),
)
