"""A raw-socket Server-Sent Events reader whose own cost is small beside a server's: it decodes
the chunked body, splits it into events and looks at their names; it parses an event's JSON only
when asked to time it (`node_complete` events, for latency figures)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import attrs
import trio

from bench.rawhttp import Connection, Dechunker, Head, ProtocolError

TERMINAL = (b"complete", b"error", b"cancelled")


def event_name(frame: bytes) -> bytes:
    """The `event:` field of one event's block (b"" for a comment or a retry hint)."""
    start = frame.find(b"event: ")
    if start < 0:
        return b""
    end = frame.find(b"\n", start)
    return frame[start + 7 : end if end >= 0 else len(frame)]


def event_data(frame: bytes) -> bytes:
    return frame[frame.index(b"data: ") + 6 :].split(b"\n", 1)[0]


@attrs.define
class EventStream:
    """The events of one streamed answer, read as they come."""

    connection: Connection
    head: Head
    decoder: Dechunker = attrs.field(factory=Dechunker)
    text: bytes = b""

    @classmethod
    async def open(cls, port: int, request: bytes) -> EventStream:
        """Connect to 127.0.0.1:`port`, send `request` and read the answer's head."""
        connection = Connection(await trio.open_tcp_stream("127.0.0.1", port))
        await connection.stream.send_all(request)
        head = await connection.head()
        if head.status != 200 or not head.chunked:
            raise ProtocolError(f"not a stream: {head.status} {connection.buffer[:300]!r}")
        stream = cls(connection, head)
        stream.text = stream.decoder.feed(connection.buffer)
        connection.buffer = b""
        return stream

    async def events(self) -> list[bytes]:
        """The next events (each a block without its blank line), at least one; comments and
        retry hints are left out."""
        while True:
            *blocks, self.text = self.text.split(b"\n\n")
            found = [block for block in blocks if event_name(block)]
            if found:
                return found
            if self.decoder.ended:
                raise ProtocolError("the stream ended without a terminal event")
            self.text += self.decoder.feed(await self.connection.receive())

    async def until(self, name: bytes, needle: bytes = b"") -> bytes:
        """Read up to the first event called `name` that holds `needle`; return it."""
        while True:
            for block in await self.events():
                if event_name(block) == name and needle in block:
                    return block
                if event_name(block) in TERMINAL:
                    raise ProtocolError(f"the run ended first: {block[:300]!r}")

    async def aclose(self) -> None:
        await self.connection.stream.aclose()


@attrs.define
class StreamRead:
    """What one read of a stream to its end saw."""

    events: int = 0
    terminal: bytes = b""
    seconds: float = 0.0  # from the request sent to the terminal event read
    # For each `node_complete`, when it was parsed (the client's wall clock) minus its `endedAt`,
    # in seconds (only when asked to time them; `endedAt` has millisecond precision).
    lags: list[float] = attrs.field(factory=list)


async def read_stream(port: int, request: bytes, *, time_nodes: bool = False) -> StreamRead:
    """Send `request` on a fresh connection and read its stream to the terminal event."""
    seen = StreamRead()
    started = time.perf_counter()
    stream = await EventStream.open(port, request)
    try:
        while not seen.terminal:
            for block in await stream.events():
                seen.events += 1
                name = event_name(block)
                if name in TERMINAL:
                    seen.terminal = block
                elif time_nodes and name == b"node_complete":
                    ended_at = json.loads(event_data(block))["endedAt"]
                    seen.lags.append(time.time() - _epoch_seconds(ended_at))
        seen.seconds = time.perf_counter() - started
    finally:
        await stream.aclose()
    return seen


def _epoch_seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
