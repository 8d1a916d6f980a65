"""What the app receives: the request body and the client's disconnect.

The request body reaches the app through a bounded queue. An app that answers without reading a
large body (a 401, a 413) leaves the connection's reader waiting on that queue for good, and its
own last `send` waits there too, to deliver `http.disconnect`: the connection and the app's task
are stuck. The correction delivers a disconnect without waiting (an app that has not read its
body is not watching for one) and closes the queue when the app returns, so what is still put for
it is dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import task_group as hypercorn_task_group
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope

from flowtrux.http.hypercorn_fixes.fix import Fix


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
    Fix(
        hypercorn_task_group.TaskGroup,
        "spawn_app",
        "return app_send_channel.send",
        _spawn_app,
    ),
)
