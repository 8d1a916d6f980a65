"""Bare hypercorn (trio worker), without FlowTrux's app, for the tests of the corrections to it
(flowtrux/http/hypercorn_fixes/): a raw ASGI app served on an ephemeral port of 127.0.0.1,
over h2c and HTTP/1.1, or over TLS."""

from __future__ import annotations

import abc
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio
import trustme
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
)

RequestScope = HTTPScope | WebsocketScope  # what is not `lifespan`


class RawApp(abc.ABC):
    """A raw ASGI app: it has nothing to start or stop for hypercorn's `lifespan` scope, and
    `request` handles each request."""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await self.request(scope, receive, send)

    @abc.abstractmethod
    async def request(
        self, scope: RequestScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None: ...


def server_config(**settings: Any) -> hypercorn.config.Config:
    """hypercorn's defaults on an ephemeral port of 127.0.0.1, without an access log, with 1 s
    for its connections to end at shutdown; then `settings` (names of `Config` attributes)."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    for name, value in settings.items():
        setattr(config, name, value)
    return config


@asynccontextmanager
async def serving(
    app: ASGIFramework,
    config: hypercorn.config.Config | None = None,
    *,
    authority: trustme.CA | None = None,
) -> AsyncIterator[int]:
    """Run hypercorn (trio worker) with `config` (by default `server_config()`), with TLS if there
    is an `authority` to issue its certificate; yield the port; shut down on exit."""
    config = server_config() if config is None else config
    with certificate(authority) as pem:
        if pem is not None:
            config.certfile = config.keyfile = pem
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            serve = functools.partial(
                hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait
            )
            binds: list[str] = await nursery.start(serve)
            try:
                yield int(binds[0].rsplit(":", 1)[1])
            finally:
                shutdown.set()


@contextmanager
def certificate(authority: trustme.CA | None) -> Iterator[str | None]:
    """A PEM file with a key and a certificate for 127.0.0.1 issued by `authority`, if any."""
    if authority is None:
        yield None
        return
    with authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.tempfile() as pem:
        yield pem
