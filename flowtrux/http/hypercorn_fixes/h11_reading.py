"""Reading HTTP/1.1 requests: a close is noticed while a pipelined request waits, and `100
Continue` goes out only once the app asks for the body.

Upstream `H11Protocol._handle_events` (`protocol/h11.py`), against hypercorn 0.18.0:

- once h11 holds bytes after a whole request (a pipelined request, or a stray CRLF) it reports
  PAUSED, and hypercorn stops reading until the answer ends. A client that closes meanwhile is
  noticed only when a write to it fails (30 s later for a stream that sends keepalives; never for
  an answer that ends first), and only then is the app told;
- it sends `100 Continue` as soon as the request head arrives, before the app has checked
  anything: 100 then 401 without a session, 100 then 413 for a 5 MB Content-Length.

The correction reads on while paused, until h11 holds more than `h11_max_incomplete_size` (16 KiB)
after the request, so that a close reaches the app as `http.disconnect` (0.4 ms after it, and it
cancels the app: `app_inbox`); a task goes on with the held requests once the answer in front of
them has ended, and one pass over h11's events runs at a time. `100 Continue` goes out when the
app first calls `receive`, if the client still waits for it: a route that answers 401, 403, 404
or 413 without reading the body sends none. hypercorn sends no 100 over HTTP/2 at all, so there
is nothing to correct there. Both parts need `app_inbox`'s inbox; without it, upstream's way is
kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import h11
import trio
from hypercorn.events import Closed, Updated
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Body, Data, EndBody

from flowtrux.http.hypercorn_fixes.app_inbox import AppInbox
from flowtrux.http.hypercorn_fixes.fix import Fix

H11Protocol = hypercorn_h11.H11Protocol
STREAM_ID = hypercorn_h11.STREAM_ID


@attrs.define(eq=False)
class _Reading:
    """What the corrected reading keeps per connection; hypercorn's class has no field for it."""

    turn: trio.Lock = attrs.Factory(trio.Lock)  # one pass over h11's events at a time
    paused_behind: AppInbox | None = None  # the answer that held requests wait for


def _reading(protocol: H11Protocol) -> _Reading:
    kept = vars(protocol)
    if "_flowtrux_reading" not in kept:
        kept["_flowtrux_reading"] = _Reading()
    reading: _Reading = kept["_flowtrux_reading"]
    return reading


def _inbox(protocol: H11Protocol) -> AppInbox | None:
    """The inbox of the request in progress, if `app_inbox`'s correction gave it one."""
    inbox = getattr(protocol.stream, "app_put", None)
    return inbox if isinstance(inbox, AppInbox) else None


async def _handle_events(self: H11Protocol) -> None:
    reading = _reading(self)
    async with reading.turn:
        await _read_events(self, reading)


async def _read_events(self: H11Protocol, reading: _Reading) -> None:
    while True:
        try:
            event = self.connection.next_event()
        except h11.RemoteProtocolError as error:
            if self.connection.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                await self._send_error_response(error.error_status_hint)
            await self.send(Closed())
            break
        if isinstance(event, h11.Request):
            await self.send(Updated(idle=False))
            await self._check_protocol(event)
            await self._create_stream(event)
            await _continue_when_asked(self)  # upstream: 100 at once
        elif event is h11.PAUSED:
            if not await _paused(self, reading):  # upstream: wait for the answer to end
                break
        elif (
            event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed) or self.stream is None
        ):
            break
        elif isinstance(event, h11.Data):
            await self.stream.handle(Body(stream_id=STREAM_ID, data=event.data))
        elif isinstance(event, h11.EndOfMessage):
            await self.stream.handle(EndBody(stream_id=STREAM_ID))
        elif isinstance(event, Data):  # WebSocket pass through
            await self.stream.handle(event)


async def _paused(self: H11Protocol, reading: _Reading) -> bool:
    """h11 holds bytes after a whole request and gives no event until the answer in progress has
    ended. Returns whether to go on with h11's events now."""
    if self.stream is None:
        return False  # no answer in progress: the connection is closing
    inbox = _inbox(self)
    if inbox is None:
        await self.can_read.clear()
        await self.can_read.wait()
        return True
    if reading.paused_behind is not inbox:
        reading.paused_behind = inbox
        await self.can_read.clear()  # set again by hypercorn once the answer has ended
        self.task_group.spawn(_resume_after, self, inbox)
    held, closed = self.connection.trailing_data
    if closed or len(held) <= self.config.h11_max_incomplete_size:
        return False  # read on, so that a close reaches the app
    return await _answer_ended(self, inbox)  # enough held: stop reading until the answer ends


async def _resume_after(self: H11Protocol, inbox: AppInbox) -> None:
    """Go on with the requests held behind `inbox`'s answer once it has ended."""
    if not await _answer_ended(self, inbox):
        return
    try:
        await _handle_events(self)
    except (hypercorn_h11.H2CProtocolRequiredError, hypercorn_h11.H2ProtocolAssumedError):
        await self.send(Closed())  # a held request asks for HTTP/2: only the reader can switch


async def _answer_ended(self: H11Protocol, inbox: AppInbox) -> bool:
    """Wait until hypercorn may read the next request (True), or until the app returned without
    that (False: the connection is closing)."""
    async with trio.open_nursery() as nursery:
        for wait in (self.can_read.wait, inbox.wait_returned):
            nursery.start_soon(_cancel_after, wait, nursery.cancel_scope)
    return self.can_read.is_set()


async def _cancel_after(wait: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


async def _continue_when_asked(self: H11Protocol) -> None:
    """The request just read may wait for `100 Continue`: send it when the app asks."""
    if not self.connection.they_are_waiting_for_100_continue:
        return
    inbox = _inbox(self)
    if inbox is None:
        await _send_100_continue(self)
    else:
        self.task_group.spawn(_send_100_continue_when_asked, self, inbox)


async def _send_100_continue_when_asked(self: H11Protocol, inbox: AppInbox) -> None:
    """Send `100 Continue` once the app asks for the body, if the client still waits for it."""
    asked = await inbox.wait_asked()
    if asked and _inbox(self) is inbox and self.connection.they_are_waiting_for_100_continue:
        await _send_100_continue(self)


async def _send_100_continue(self: H11Protocol) -> None:
    headers = self.config.response_headers("h11")
    await self._send_h11_event(h11.InformationalResponse(status_code=100, headers=headers))


FIXES = (
    Fix(
        H11Protocol,
        "_handle_events",
        # Both bugs, and all between: a change anywhere in it means upstream must be read again.
        """
        while True:
            if self.connection.they_are_waiting_for_100_continue:
                await self._send_h11_event(
                    h11.InformationalResponse(
                        status_code=100, headers=self.config.response_headers("h11")
                    )
                )

            try:
                event = self.connection.next_event()
            except h11.RemoteProtocolError as error:
                if self.connection.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                    await self._send_error_response(error.error_status_hint)
                await self.send(Closed())
                break
            else:
                if isinstance(event, h11.Request):
                    await self.send(Updated(idle=False))
                    await self._check_protocol(event)
                    await self._create_stream(event)
                elif event is h11.PAUSED:
                    await self.can_read.clear()
                    await self.can_read.wait()
        """,
        _handle_events,
    ),
)
