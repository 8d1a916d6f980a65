"""Capacity limiters for work sent to worker threads, one per Trio run (a limiter belongs to the
run that made it, and the tests start many runs in one process); and locks taken without a
scheduling pass when they are free."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


def run_limiter(
    var: trio.lowlevel.RunVar[trio.CapacityLimiter], capacity: int
) -> trio.CapacityLimiter:
    """The limiter `var` holds in this Trio run, made with `capacity` on first use."""
    try:
        return var.get()
    except LookupError:
        limiter = trio.CapacityLimiter(capacity)
        var.set(limiter)
        return limiter


@asynccontextmanager
async def taken(lock: trio.Lock | trio.Semaphore) -> AsyncIterator[None]:
    """`async with lock`, without the scheduling pass Trio makes when the lock is free (a
    cancelled caller still stops here). For a lock taken right before a call that checkpoints
    anyway (a store call, a socket write): an `execute` took six such passes through the
    scheduler, and as many polls of epoll."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()
    try:
        yield
    finally:
        lock.release()
