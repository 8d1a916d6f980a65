"""Three corrections to hypercorn 0.18 (trio worker), applied when FlowTrux serves.

1. Back-pressure. ``StreamBuffer.pop`` un-pauses the writer when the *popped chunk* is below the
   low-water mark instead of when the *remaining buffer* is. A client that stops reading gets a
   flow-control window of 0, ``pop(0)`` returns ``b""`` and wakes the writer each time, so the
   app could buffer a response without bound. The correction compares ``len(self.buffer)``.
2. Data after the answer. When the app answers before the request body has all arrived (a 413,
   a 401), the DATA frames still arriving for the closed stream raise ``KeyError`` in
   ``H2Protocol._handle_events``, and under the trio worker that stops the whole server
   (upstream pgjones/hypercorn#329). The correction drops such data, still giving the
   connection its flow-control window back.
3. A body nobody reads. The request body reaches the app through a bounded queue. An app that
   answers without reading a large body (a 401, a 413) leaves the connection's reader waiting on
   that queue for good, and its own last `send` waits there too, to deliver `http.disconnect`:
   the connection and the app's task are stuck. The correction delivers a disconnect without
   waiting (an app that has not read its body is not watching for one) and closes the queue
   when the app returns, so what is still put for it is dropped.

Each correction is applied only on hypercorn 0.18.x and only while upstream still has the bug.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import h2.events
import trio
from hypercorn.config import Config
from hypercorn.protocol import h2 as hypercorn_h2
from hypercorn.trio import task_group as hypercorn_task_group
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope

logger = logging.getLogger(__name__)


@attrs.frozen
class Fix:
    """A method of hypercorn replaced by a corrected one; `bug` is upstream code with the bug."""

    owner: type
    name: str
    bug: str
    corrected: Callable[..., Any]
    original: Callable[..., Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "original", getattr(self.owner, self.name))

    @property
    def applied(self) -> bool:
        return getattr(self.owner, self.name) is self.corrected

    def upstream_has_bug(self) -> bool:
        try:
            source = inspect.getsource(getattr(self.owner, self.name))
        except (OSError, TypeError):
            return False
        return "".join(self.bug.split()) in "".join(source.split())


async def _pop(self: hypercorn_h2.StreamBuffer, max_length: int) -> bytes:
    length = min(len(self.buffer), max_length)
    data = bytes(self.buffer[:length])
    del self.buffer[:length]
    if len(self.buffer) < hypercorn_h2.BUFFER_LOW_WATER:  # upstream: len(data)
        await self._paused.set()
    if len(self.buffer) == 0:
        await self._is_empty.set()
    return data


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


async def _spawn_app(
    self: hypercorn_task_group.TaskGroup,
    app: AppWrapper,
    config: Config,
    scope: Scope,
    send: Callable[[ASGISendEvent | None], Awaitable[None]],
) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
    to_app, app_inbox = trio.open_memory_channel[ASGIReceiveEvent](config.max_app_queue_size)

    async def run_app() -> None:
        with app_inbox:  # closed when the app returns: later puts are dropped, not stuck
            await hypercorn_task_group._handle(
                app, config, scope, app_inbox.receive, send,
                trio.to_thread.run_sync, trio.from_thread.run,
            )  # fmt: skip

    async def put(message: ASGIReceiveEvent) -> None:
        try:
            if message["type"] == "http.disconnect":
                to_app.send_nowait(message)
            else:
                await to_app.send(message)
        except (trio.WouldBlock, trio.BrokenResourceError):
            pass  # the app's unread body fills the queue, or the app has returned

    assert self._nursery is not None
    self._nursery.start_soon(run_app)
    return put


FIXES = (
    Fix(hypercorn_h2.StreamBuffer, "pop", "if len(data) < BUFFER_LOW_WATER:", _pop),
    Fix(
        hypercorn_h2.H2Protocol,
        "_handle_events",
        "await self.streams[event.stream_id].handle(Body(",
        _handle_events,
    ),
    Fix(
        hypercorn_task_group.TaskGroup,
        "spawn_app",
        "return app_send_channel.send",
        _spawn_app,
    ),
)


def is_applied() -> bool:
    """Whether every correction is in place."""
    return all(fix.applied for fix in FIXES)


def apply() -> None:
    """Apply the corrections that are still needed; idempotent."""
    version = importlib.metadata.version("hypercorn")
    for fix in FIXES:
        where = f"{fix.owner.__name__}.{fix.name}"
        if fix.applied:
            continue
        if version.split(".")[:2] != ["0", "18"]:
            logger.warning("h2_patch: hypercorn %s is not 0.18.x; not patching %s", version, where)
        elif not fix.upstream_has_bug():
            logger.warning("h2_patch: upstream %s changed; not patching it", where)
        else:
            setattr(fix.owner, fix.name, fix.corrected)
