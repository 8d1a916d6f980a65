"""Server-Sent Events: the frames, and a response that owns its send loop.

The response runs the loop itself instead of wrapping an async generator: it can watch for the
client's disconnect in its own nursery, and its cleanup (`feed.close()`, `on_close()`) is plain
synchronous code that runs in this task, whatever ended the stream.
"""

from collections.abc import Callable

import trio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowtrux import metrics
from flowtrux.http.disconnect import cancel_on_disconnect
from flowtrux.runs.feed import Feed
from flowtrux.store.executions import StoredEvent

KEEPALIVE = b": keepalive\n\n"
RETRY_MS = 3_000
RETRY_HINT = f"retry: {RETRY_MS}\n".encode()  # in the block of what is sent first
COALESCE_BYTES = 64 * 1024  # events at hand sent in one write, up to about this much


def frame(event: StoredEvent) -> bytes:
    return f"id: {event.seq}\nevent: {event.name}\ndata: {event.data}\n\n".encode()


def stream_headers(http_version: str) -> dict[str, str]:
    headers = {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    if http_version == "1.1":  # HTTP/2 and HTTP/3 forbid connection-specific headers
        headers["Connection"] = "keep-alive"
    return headers


class EventStreamResponse(Response):
    def __init__(
        self,
        feed: Feed,
        *,
        keepalive_s: float,
        http_version: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.feed = feed
        self.on_close = on_close
        self.keepalive_s = keepalive_s
        self.status_code = 200
        self.background = None
        self.init_headers(stream_headers(http_version))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.open_streams.inc()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_on_disconnect, receive, nursery.cancel_scope)
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                await self._send_events(send)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                nursery.cancel_scope.cancel()
        finally:
            metrics.open_streams.dec()
            self.feed.close()
            if self.on_close is not None:
                self.on_close()

    async def _send_events(self, send: Send) -> None:
        hint = RETRY_HINT  # first: how long a browser waits before it reconnects
        while True:
            with trio.move_on_after(self.keepalive_s) as silence:
                try:
                    event = await self.feed.receive()
                except trio.EndOfChannel:
                    return
            if silence.cancelled_caught:
                await _send_body(send, hint + KEEPALIVE)  # no data: no event (WHATWG's rules)
                hint = b""
                continue
            body, ended = self._frames_at_hand(hint + frame(event), event)
            await _send_body(send, body)
            hint = b""
            if ended:
                return

    def _frames_at_hand(self, body: bytes, event: StoredEvent) -> tuple[bytes, bool]:
        """`body` (the frame of `event`) followed by the frames of the events the feed has at
        hand, up to COALESCE_BYTES: a journal commit publishes a run's events together, and
        one write of them all costs the server one pass through the ASGI stack, h11 and the
        socket instead of one per event. Whether the terminal event is in it."""
        frames, sent = [body], 1
        size = len(body)
        while not event.terminal and size < COALESCE_BYTES:
            found = self.feed.receive_nowait()
            if found is None:
                break
            event = found
            frames.append(frame(event))
            size += len(frames[-1])
            sent += 1
        metrics.events_sent.inc(sent)
        return b"".join(frames), event.terminal


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})
