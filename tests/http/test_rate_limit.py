"""The per-process quota: a moving window per key, forgotten once it has emptied."""

import time

import pytest

from flowtrux.errors import TooManyRequests
from flowtrux.http import rate_limit
from flowtrux.http.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


def test_the_window_moves_and_says_how_long_to_wait(clock: Clock) -> None:
    quota = RateLimiter.parse("2/minute")
    quota.hit("ada")
    clock.now += 40
    quota.hit("ada")
    with pytest.raises(TooManyRequests) as refused:
        quota.hit("ada")
    assert refused.value.retry_after_s == 20  # the first hit leaves the window in 20 s
    quota.hit("bob")  # per key
    clock.now += 20
    quota.hit("ada")  # the first has left; the second is still in
    with pytest.raises(TooManyRequests):
        quota.hit("ada")


def test_keys_whose_window_emptied_are_forgotten(clock: Clock) -> None:
    quota = RateLimiter.parse("5/second")
    for user in range(rate_limit.SWEEP_EVERY - 1):
        quota.hit(f"user-{user}")
    clock.now += 2
    quota.hit("last")  # the sweep's turn
    assert quota._hits.keys() == {"last"}
