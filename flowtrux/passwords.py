"""Password hashing with argon2, off the Trio thread, a few hashes at a time.

A hash costs tens of milliseconds and 64 MiB (argon2's default memory cost): 40 at once took
2.5 GiB. So at most `HASHES_AT_ONCE` run at a time, per process; the others wait their turn, and
past `HASHES_WAITING` waiting the caller is told to come back (ServerBusy, a 503).
"""

from collections.abc import Callable
from typing import TypeVar

import argon2
import trio

from flowtrux.errors import ServerBusy
from flowtrux.limiters import run_limiter

T = TypeVar("T")

HASHES_AT_ONCE = 2
HASHES_WAITING = 32

_hasher = argon2.PasswordHasher()
_DECOY = "flowtrux decoy password"
_hashing: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("flowtrux_hashing")
_decoy: trio.lowlevel.RunVar[str] = trio.lowlevel.RunVar("flowtrux_decoy")


async def hash_password(password: str) -> str:
    """Raises ServerBusy when too many hashes wait already. Checkpoints."""
    return await _in_turn(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches. With no hash (an unknown user) a decoy is checked, so that
    both failures take as long and cannot be told apart. Raises ServerBusy. Checkpoints."""
    against = password_hash or await _decoy_hash()

    def verify() -> bool:
        try:
            return _hasher.verify(against, password)
        except argon2.exceptions.VerificationError:
            return False

    return await _in_turn(verify) and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def _decoy_hash() -> str:
    """A hash made with the current parameters, once per run of the event loop."""
    try:
        return _decoy.get()
    except LookupError:
        decoy = await _in_turn(_hasher.hash, _DECOY)
        _decoy.set(decoy)
        return decoy


async def _in_turn(fn: Callable[..., T], *args: object) -> T:
    limiter = run_limiter(_hashing, HASHES_AT_ONCE)
    if limiter.statistics().tasks_waiting >= HASHES_WAITING:
        raise ServerBusy("Too many logins are being checked at once; try again in a moment.")
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter)
