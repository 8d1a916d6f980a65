"""Serving with hypercorn's trio worker: HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or TLS
with ALPN when hypercorn.toml names a certificate)."""

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.typing import Framework
from hypercorn.utils import wrap_app  # as hypercorn.trio.serve does, which takes no sockets
from starlette.applications import Starlette

from flowtrux import collector, gil, memory
from flowtrux.config import Settings, read_toml
from flowtrux.http import hypercorn_fixes
from flowtrux.http.access_log import AccessLogger
from flowtrux.http.hypercorn_fixes.connections import Bounds, bound_connections

logger = logging.getLogger(__name__)


def hypercorn_config(
    config_file: Path | None, bind: str | None = None, settings: Settings | None = None
) -> Config:
    """hypercorn's settings from `config_file` (its `[flowtrux]` table aside); `bind` wins.
    The connections are bounded by `settings` (by default, the defaults)."""
    mapping: dict[str, Any] = {}
    if config_file is not None and config_file.exists():
        mapping = {k: v for k, v in read_toml(config_file).items() if k != "flowtrux"}
    config = Config.from_mapping(mapping)
    if bind is not None:
        config.bind = [bind]
    config.accesslog = logging.getLogger("hypercorn.access")
    config.logger_class = AccessLogger
    config.errorlog = logging.getLogger("hypercorn.error")
    settings = settings or Settings()
    bound_connections(config, Bounds(settings.request_timeout_s, settings.max_connections))
    return config


async def serve(
    app: Starlette,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    sockets: Sockets | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until `shutdown_trigger` returns, on `sockets` (bound by a parent process)
    or on the config's binds; `task_status` gets the bound URLs."""
    hypercorn_fixes.apply()
    memory.return_large_blocks()
    gil.hand_back_soon()
    collector.tune_for_serving()
    framework = cast(Framework, app)  # Starlette is an ASGI app; hypercorn's types are narrower
    await worker_serve(
        wrap_app(framework, config.wsgi_max_body_size, None),
        config,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


@asynccontextmanager
async def graceful_shutdown(app: Starlette) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A shutdown trigger, for the block that serves: on SIGINT or SIGTERM, end every run (each
    stream gets its terminal event) before hypercorn starts closing connections. A second signal
    stops waiting for the store to take the runs' ends. Signals stay caught until the block
    ends, so that the shutdown is never cut short by one."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def drain_on_signal() -> None:
            await anext(signals)
            runs = app.state.services.runs
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_hurry_on_signal, signals, runs.hurry)
                await runs.drain()
                nursery.cancel_scope.cancel()

        yield drain_on_signal


async def _hurry_on_signal(signals: AsyncIterator[int], hurry: Callable[[], None]) -> None:
    await anext(signals)
    logger.warning("a second signal: not waiting for the store to take the runs' ends")
    hurry()
