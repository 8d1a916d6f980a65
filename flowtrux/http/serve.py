"""Serving with hypercorn's trio worker: HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or TLS
with ALPN when hypercorn.toml names a certificate)."""

import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import Framework
from starlette.applications import Starlette

from flowtrux import memory
from flowtrux.config import read_toml
from flowtrux.http import hypercorn_fixes


def hypercorn_config(config_file: Path | None, bind: str | None = None) -> Config:
    """hypercorn's settings from `config_file` (its `[flowtrux]` table aside); `bind` wins."""
    mapping: dict[str, Any] = {}
    if config_file is not None and config_file.exists():
        mapping = {k: v for k, v in read_toml(config_file).items() if k != "flowtrux"}
    config = Config.from_mapping(mapping)
    if bind is not None:
        config.bind = [bind]
    config.accesslog = logging.getLogger("hypercorn.access")
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve(
    app: Starlette,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until `shutdown_trigger` returns; `task_status` gets the bound URLs."""
    hypercorn_fixes.apply()
    memory.return_large_blocks()
    framework = cast(Framework, app)  # Starlette is an ASGI app; hypercorn's types are narrower
    await hypercorn.trio.serve(
        framework, config, shutdown_trigger=shutdown_trigger, task_status=task_status
    )


def graceful_shutdown(app: Starlette) -> Callable[[], Awaitable[None]]:
    """A shutdown trigger: on SIGINT or SIGTERM, end every run (each stream gets its terminal
    event) before hypercorn starts closing connections."""

    async def wait_then_drain() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        await app.state.services.runs.drain()

    return wait_then_drain
