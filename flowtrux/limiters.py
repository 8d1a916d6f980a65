"""Capacity limiters for work sent to worker threads, one per Trio run (a limiter belongs to the
run that made it, and the tests start many runs in one process)."""

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
