"""Quotas of requests over a moving window (by `limits`): a user's runs, a workflow's webhook
calls."""

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
    used_up: str = "You have used your quota of runs"  # the start of the 429's sentence
    _limiter: MovingWindowRateLimiter = attrs.field(
        factory=lambda: MovingWindowRateLimiter(MemoryStorage()), init=False
    )

    @classmethod
    def parse(cls, rate: str, used_up: str = "You have used your quota of runs") -> "RateLimiter":
        return cls(limits.parse(rate), used_up)

    def hit(self, key: str) -> None:
        """Count one request for `key`. Raises TooManyRequests with the seconds to wait."""
        if self._limiter.hit(self.rate, key):
            return
        reset_at = self._limiter.get_window_stats(self.rate, key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"{self.used_up} ({self.rate}); try again in {retry_after} s.",
            retry_after,
        )
