"""What the app receives, and when it is stopped: the request body, the client's disconnect, and
the cancellation of an app whose client left before its answer ended.

Upstream (`trio/task_group.py`, `TaskGroup.spawn_app`) puts the body and `http.disconnect` alike
into one queue of `max_app_queue_size` (10) messages, and nothing stops an app whose client left.
Against hypercorn 0.18.0:

- the disconnect queues behind the body the app has not read: an app that answers a large body
  without reading it (a 401, a 413) then waits in its own last `send` for room it never makes,
  and the connection's reader waits on the same queue, for good. (Putting the disconnect without
  waiting and dropping it when the queue is full, as this module did before, loses it: a body in
  9 pieces, so HTTP/1.1 chunks or HTTP/2 DATA frames of any body of 144 KiB or more, then a close
  or a reset, and the app never learnt that its client had gone; its run went on to `COMPLETED`.)
- 200 logins on one HTTP/2 connection, each reset right after its body, still ran 200 argon2
  hashes (59.5 s of CPU, 2.2 GiB); 147 of the 200 in tests/e2e/test_disconnects.py.

The correction gives each app an `AppInbox`. The body waits in a bounded queue, with
back-pressure on the reader. The disconnect is a flag, never queued, so it can neither be lost
nor wait: from then on `receive` answers `http.disconnect`, before any body the app has not read,
as no one is left to answer (uvicorn does the same). And the app runs in a cancel scope that the
disconnect cancels, unless the app has sent the end of its answer (what it does after that, such
as Starlette's background tasks, runs on): none of the 200 logins above is hashed any more. Once
the client has left or the app has returned, what is still put for the app is dropped, so the
reader never waits for an app that will not read.

`h11_reading` relies on the inbox too: it sends `100 Continue` once the app first asks for a
message, and goes on with pipelined requests once the app in front of them has answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import task_group as hypercorn_task_group
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope

from flowtrux.http.hypercorn_fixes.fix import Fix

HypercornSend = Callable[[ASGISendEvent | None], Awaitable[None]]


class AppInbox:
    """What hypercorn puts for one app, and the app's `receive`. hypercorn's stream keeps it as
    its `app_put`."""

    def __init__(self, size: int) -> None:
        self._to_app, self._unread = trio.open_memory_channel[ASGIReceiveEvent](size)
        self._app_scope = trio.CancelScope()
        self._client_left = False
        self._answered = False  # the app has sent the last of its response body
        self._asked = trio.Event()  # the app has called `receive`, or has returned
        self._returned = trio.Event()

    async def __call__(self, message: ASGIReceiveEvent) -> None:
        """Put `message` for the app: body messages wait for room, a disconnect never waits."""
        if message["type"] == "http.disconnect":
            self._client_leaves()
            return
        # Dropped once the client has left or the app has returned: no one will read it.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._to_app.send(message)

    async def receive(self) -> ASGIReceiveEvent:
        """The app's `receive`."""
        self._asked.set()
        if self._client_left:
            await trio.lowlevel.checkpoint()  # a cancelled app learns it here, not from a message
        else:
            try:
                return await self._unread.receive()
            except trio.EndOfChannel:
                pass  # the client left while the app was waiting
        return {"type": "http.disconnect"}

    async def run(self, app: AppWrapper, config: Config, scope: Scope, send: HypercornSend) -> None:
        """Run the app (in its own task), until it returns or its client leaves mid-answer."""
        try:
            with self._app_scope, self._unread:
                await hypercorn_task_group._handle(
                    app, config, scope, self.receive, self._noting_the_end(send),
                    trio.to_thread.run_sync, trio.from_thread.run,
                )  # fmt: skip
        finally:
            self._returned.set()
            self._asked.set()

    async def wait_asked(self) -> bool:
        """Wait until the app first calls `receive` or returns; whether it asked and still runs."""
        await self._asked.wait()
        return not self._returned.is_set()

    async def wait_returned(self) -> None:
        await self._returned.wait()

    def _client_leaves(self) -> None:
        self._client_left = True
        if not self._answered:
            self._app_scope.cancel()  # first, so that an app waiting in `receive` is cancelled
        self._to_app.close()  # wakes an app waiting in `receive`; drops later puts

    def _noting_the_end(self, send: HypercornSend) -> HypercornSend:
        async def send_noting_the_end(message: ASGISendEvent | None) -> None:
            if (
                message is not None
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
            ):
                self._answered = True  # before sending: sending it may report the disconnect
            await send(message)

        return send_noting_the_end


async def _spawn_app(
    self: hypercorn_task_group.TaskGroup,
    app: AppWrapper,
    config: Config,
    scope: Scope,
    send: HypercornSend,
) -> AppInbox:
    inbox = AppInbox(config.max_app_queue_size)
    assert self._nursery is not None
    self._nursery.start_soon(inbox.run, app, config, scope, send)
    return inbox


FIXES = (
    Fix(
        hypercorn_task_group.TaskGroup,
        "spawn_app",
        "return app_send_channel.send",
        _spawn_app,
    ),
)
