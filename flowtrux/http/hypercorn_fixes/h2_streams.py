"""HTTP/2 events for streams hypercorn no longer knows.

When the app answers before the request body has all arrived (a 413, a 401), the DATA frames
still arriving for the closed stream raise ``KeyError`` in ``H2Protocol._handle_events``, and
under the trio worker that stops the whole server (upstream pgjones/hypercorn#329). The
correction drops such data, still giving the connection its flow-control window back.
"""

from __future__ import annotations

import h2.events
from hypercorn.protocol import h2 as hypercorn_h2

from flowtrux.http.hypercorn_fixes.fix import Fix

_upstream_handle_events = hypercorn_h2.H2Protocol._handle_events


async def _handle_events(self: hypercorn_h2.H2Protocol, events: list[h2.events.Event]) -> None:
    dropped = False
    for event in events:  # one at a time: a stream may close while earlier events are handled
        if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
            self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            dropped = True
        else:
            await _upstream_handle_events(self, [event])
    if dropped:
        await self._flush()


FIXES = (
    Fix(
        hypercorn_h2.H2Protocol,
        "_handle_events",
        "await self.streams[event.stream_id].handle(Body(",
        _handle_events,
    ),
)
