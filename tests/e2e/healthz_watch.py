"""How long other clients wait while one request does something large: `/healthz` asked every
~20 ms on a connection of its own."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import httpx
import trio

POLL_INTERVAL_S = 0.02


@attrs.define
class Latency:
    """The worst wait for `/healthz` seen so far, the one still waiting included."""

    answers: int = 0
    _worst_s: float = 0.0
    _asked_at: float | None = None

    @property
    def worst_s(self) -> float:
        waiting = 0.0 if self._asked_at is None else trio.current_time() - self._asked_at
        return max(self._worst_s, waiting)

    async def ask(self, client: httpx.AsyncClient) -> None:
        self._asked_at = trio.current_time()
        answer = await client.get("/healthz")
        assert answer.status_code == 200
        self.settle()
        self.answers += 1

    def settle(self) -> None:
        """Count the wait so far of an answer not there yet, and stop counting it."""
        self._worst_s, self._asked_at = self.worst_s, None


@asynccontextmanager
async def watching_health(client: httpx.AsyncClient) -> AsyncIterator[Latency]:
    """Another tenant, meanwhile: `GET /healthz` with `client` (its own connection) every
    ~20 ms.

    The test process holds what every earlier test left for the garbage collector, and a full
    collection of it (a few hundred ms, late in a whole run) is the test's own pause, not the
    server's: what is there is frozen out of collections while the watch goes on."""
    latency = Latency()
    await latency.ask(client)  # the connection is open before the watch begins
    gc.collect()
    gc.freeze()
    try:
        async with trio.open_nursery() as nursery:

            async def poll() -> None:
                while True:
                    await latency.ask(client)
                    await trio.sleep(POLL_INTERVAL_S)

            nursery.start_soon(poll)
            yield latency
            latency.settle()
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()
