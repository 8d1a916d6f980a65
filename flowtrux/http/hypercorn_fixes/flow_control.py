"""HTTP/2 back-pressure.

``StreamBuffer.pop`` un-pauses the writer when the *popped chunk* is below the low-water mark
instead of when the *remaining buffer* is. A client that stops reading gets a flow-control window
of 0, ``pop(0)`` returns ``b""`` and wakes the writer each time, so the app could buffer a
response without bound (1.47 GiB RSS seen in 2 s). The correction compares ``len(self.buffer)``.
"""

from __future__ import annotations

from hypercorn.protocol import h2 as hypercorn_h2

from flowtrux.http.hypercorn_fixes.fix import Fix


async def _pop(self: hypercorn_h2.StreamBuffer, max_length: int) -> bytes:
    length = min(len(self.buffer), max_length)
    data = bytes(self.buffer[:length])
    del self.buffer[:length]
    if len(self.buffer) < hypercorn_h2.BUFFER_LOW_WATER:  # upstream: len(data)
        await self._paused.set()
    if len(self.buffer) == 0:
        await self._is_empty.set()
    return data


FIXES = (Fix(hypercorn_h2.StreamBuffer, "pop", "if len(data) < BUFFER_LOW_WATER:", _pop),)
