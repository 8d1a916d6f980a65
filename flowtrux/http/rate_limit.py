"""Quotas of requests over a moving window: a user's runs (counted in this process), a
workflow's webhook calls (counted in the store, by every process alike). `limits` reads the
rates (`60/minute`)."""

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import limits

from flowtrux.errors import TooManyRequests

RUNS_USED_UP = "You have used your quota of runs"
SWEEP_EVERY = 1024


@attrs.define(eq=False)
class RateLimiter:
    """A moving window of each key's requests, counted in this process's memory.

    `limits`' own MemoryStorage starts a thread every 10 ms while requests come, to expire
    them: a hundred threads a second under load, which a Trio server's every turn then shares
    the GIL with. Here a key's window is pruned when the key is counted, and keys whose window
    has emptied are dropped every SWEEP_EVERY counts."""

    rate: limits.RateLimitItem
    _hits: dict[str, deque[float]] = attrs.field(factory=dict, init=False)
    _counted: int = attrs.field(default=0, init=False)

    @classmethod
    def parse(cls, rate: str) -> "RateLimiter":
        return cls(limits.parse(rate))

    def hit(self, key: str) -> None:
        """Count one request for `key`. Raises TooManyRequests with the seconds to wait."""
        now, window_s = time.monotonic(), self.rate.get_expiry()
        self._counted += 1
        if self._counted % SWEEP_EVERY == 0:
            self._sweep(now - window_s)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= self.rate.amount:
            raise _too_many(RUNS_USED_UP, self.rate, hits[0] + window_s - now)
        hits.append(now)

    def _sweep(self, expired: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= expired]:
            del self._hits[key]


CountCall = Callable[[str, int, float, float], Awaitable[float | None]]


@attrs.frozen
class SharedRateLimiter:
    """A quota counted by `count(key, limit, window_s, now)` in the store, which returns the
    seconds to wait when the call is over the limit (and counts nothing then)."""

    rate: limits.RateLimitItem
    count: CountCall
    used_up: str  # the start of the 429's sentence

    @classmethod
    def parse(cls, rate: str, count: CountCall, used_up: str) -> "SharedRateLimiter":
        return cls(limits.parse(rate), count, used_up)

    async def hit(self, key: str) -> None:
        """Count one request for `key`. Raises TooManyRequests with the seconds to wait."""
        wait_s = await self.count(key, self.rate.amount, self.rate.get_expiry(), time.time())
        if wait_s is not None:
            raise _too_many(self.used_up, self.rate, wait_s)


def _too_many(used_up: str, rate: limits.RateLimitItem, wait_s: float) -> TooManyRequests:
    retry_after = max(1, math.ceil(wait_s))
    return TooManyRequests(f"{used_up} ({rate}); try again in {retry_after} s.", retry_after)
