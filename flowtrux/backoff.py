"""Pauses between attempts at something that may work again later (the store, mostly)."""

from collections.abc import Iterator


def pauses(first_s: float, most_s: float) -> Iterator[float]:
    """Doubling from `first_s` up to `most_s`, then `most_s` for ever."""
    pause = first_s
    while True:
        yield pause
        pause = min(pause * 2, most_s)
