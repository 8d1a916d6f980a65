"""How long other clients wait while one request does something large: `/healthz` polled on a
connection of its own, on the server's Trio loop."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from tests.e2e.conftest import Server, new_client

T = TypeVar("T")

POLL_INTERVAL_S = 0.02


async def longest_healthz_wait(
    server: Server, http_version: str, work: Callable[[], Awaitable[T]]
) -> tuple[T, float]:
    """Run `work()` while another client asks `/healthz` every ~20 ms on its own connection;
    return what `work()` returned and the longest any of those answers took, in seconds (the
    answer pending when `work()` ends counts too)."""
    waits: list[float] = []
    done = trio.Event()
    async with new_client(server, http_version) as other:
        assert (await other.get("/healthz")).status_code == 200  # connected before the work

        async def poll() -> None:
            while not done.is_set():
                asked = trio.current_time()
                assert (await other.get("/healthz")).status_code == 200
                waits.append(trio.current_time() - asked)
                await trio.sleep(POLL_INTERVAL_S)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            result = await work()
            done.set()
    return result, max(waits)
