"""HTTP/1.1 answers that say when the connection ends after them.

Upstream `H11Protocol` (`protocol/h11.py`, hypercorn 0.18.0) closes the connection after an
answer sent before the request's body had all arrived (a 413 or a 401 that never reads it), and
after any answer once the server is shutting down, but says `Connection: close` only after
`keep_alive_max_requests`. A keep-alive client then sends its next request on a connection that
is being closed, and gets no answer: 8 of 20 such requests failed with httpx ("Server
disconnected without sending a response"; a POST is not retried). RFC 9112 §9.6: a server that
closes after a response sends `Connection: close` in it. Such an answer now does.
"""

from __future__ import annotations

import dataclasses

import h11
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import Response

from flowtrux.http.hypercorn_fixes.fix import Fix

H11Protocol = hypercorn_h11.H11Protocol
_upstream_stream_send = H11Protocol.stream_send


async def _stream_send(self: H11Protocol, event: StreamEvent) -> None:
    if isinstance(event, Response) and event.status_code >= 200 and _closes_after(self):
        event = dataclasses.replace(event, headers=[*event.headers, (b"connection", b"close")])
    await _upstream_stream_send(self, event)


def _closes_after(self: H11Protocol) -> bool:
    """Whether upstream closes the connection after this answer without saying so."""
    if self.keep_alive_requests >= self.config.keep_alive_max_requests:
        return False  # upstream says so itself
    unread_body = self.connection.their_state is not h11.DONE
    return unread_body or self.context.terminated.is_set()


FIXES = (
    Fix(
        H11Protocol,
        "stream_send",
        """if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                    headers.append((b"connection", b"close"))""",
        _stream_send,
    ),
)
