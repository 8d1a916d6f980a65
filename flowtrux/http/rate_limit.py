"""Quotas of requests over a moving window: a user's runs (counted in this process, by
`limits`), a workflow's webhook calls (counted in the store, by every process alike)."""

import math
import time
from collections.abc import Awaitable, Callable

import attrs
import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from flowtrux.errors import TooManyRequests

RUNS_USED_UP = "You have used your quota of runs"


@attrs.define(eq=False)
class RateLimiter:
    rate: limits.RateLimitItem
    _limiter: MovingWindowRateLimiter = attrs.field(
        factory=lambda: MovingWindowRateLimiter(MemoryStorage()), init=False
    )

    @classmethod
    def parse(cls, rate: str) -> "RateLimiter":
        return cls(limits.parse(rate))

    def hit(self, key: str) -> None:
        """Count one request for `key`. Raises TooManyRequests with the seconds to wait."""
        if self._limiter.hit(self.rate, key):
            return
        reset_at = self._limiter.get_window_stats(self.rate, key).reset_time
        raise _too_many(RUNS_USED_UP, self.rate, reset_at - time.time())


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
