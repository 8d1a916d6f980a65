"""The per-user quota shared by both execute calls (a moving window, by `limits`)."""

import math
import time

import attrs
import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from flowtrux.errors import TooManyRequests


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
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"You have used your quota of runs ({self.rate}); try again in {retry_after} s.",
            retry_after,
        )
