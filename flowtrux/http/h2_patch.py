"""Fix HTTP/2 back-pressure in hypercorn 0.18 (``StreamBuffer.pop``).

Upstream ``pop`` un-pauses the writer when the *popped chunk* is below the low-water mark,
instead of when the *remaining buffer* is. When a client stops reading, its flow-control
window reaches 0, ``pop(0)`` returns ``b""`` and wakes the writer each time, so the ASGI
app can buffer response data without bound. :func:`apply` swaps in a copy of ``pop`` that
compares ``len(self.buffer)``; it only patches 0.18.x while the upstream bug is present.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging

from hypercorn.protocol import h2 as _h2

__all__ = ["apply", "is_applied"]

logger = logging.getLogger(__name__)

_BUGGY_LINE = "len(data) < BUFFER_LOW_WATER"


async def _fixed_pop(self: _h2.StreamBuffer, max_length: int) -> bytes:
    length = min(len(self.buffer), max_length)
    data = bytes(self.buffer[:length])
    del self.buffer[:length]
    if len(self.buffer) < _h2.BUFFER_LOW_WATER:  # upstream: len(data)
        await self._paused.set()
    if len(self.buffer) == 0:
        await self._is_empty.set()
    return data


def is_applied() -> bool:
    """Return whether ``StreamBuffer.pop`` is currently the corrected version."""
    return getattr(_h2, "StreamBuffer", None) is not None and _h2.StreamBuffer.pop is _fixed_pop


def _upstream_is_buggy() -> bool:
    version = importlib.metadata.version("hypercorn")
    if version.split(".")[:2] != ["0", "18"]:
        logger.warning("h2_patch: hypercorn %s is not 0.18.x; not patching", version)
        return False
    pop = getattr(getattr(_h2, "StreamBuffer", None), "pop", None)
    try:
        source = inspect.getsource(pop) if pop is not None else ""
    except (OSError, TypeError):
        source = ""
    if _BUGGY_LINE not in source:
        logger.warning("h2_patch: upstream StreamBuffer.pop changed; not patching")
        return False
    return True


def apply() -> None:
    """Patch ``hypercorn.protocol.h2.StreamBuffer.pop``; idempotent, guarded by version."""
    if is_applied() or not _upstream_is_buggy():
        return
    _h2.StreamBuffer.pop = _fixed_pop  # type: ignore[method-assign]
    logger.debug("h2_patch: patched hypercorn.protocol.h2.StreamBuffer.pop")
