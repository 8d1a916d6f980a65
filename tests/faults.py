"""Faults a test causes in a real store: SQLite's write lock held by another connection, and
writes that fail as if the store could not answer."""

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import trio

from flowtrux.errors import StoreUnavailable
from flowtrux.store.database import Connection, Database


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another connection holds the write lock of the SQLite file `database` until the block
    ends, as a backup tool or a second process in a long transaction would."""
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.rollback()
        other.close()


T = TypeVar("T")


class FlakyWrites:
    """The real database, except that the writes a test picks fail as if the store could not
    answer (locked, full, unreachable): StoreUnavailable, raised before the write reaches the
    real database, so that nothing is written, as the real store promises when it raises it.

    Reads always go through: the faults are the writer's, and a test reads to check."""

    def __init__(self, real: Database) -> None:
        self.real = real
        self.writes = 0  # write calls so far, failed or not
        self.failed = 0
        self._failing: frozenset[int] = frozenset()

    def fail_writes(self, numbers: Iterable[int]) -> None:
        """From now on the writes numbered `numbers` fail, the next write being number 0 (so
        that the writes a test's own setup made do not count)."""
        self._failing = frozenset(self.writes + number for number in numbers)

    async def read(self, query: Callable[[Connection], T]) -> T:
        return await self.real.read(query)

    async def write(self, change: Callable[[Connection], T]) -> T:
        number = self.writes
        self.writes += 1
        if number not in self._failing:
            return await self.real.write(change)
        self.failed += 1
        await trio.lowlevel.checkpoint()  # a real write checkpoints whether it fails or not
        raise StoreUnavailable(f"a fault the test injected (write {number})")

    async def takes_writes(self, probe: Callable[[Connection], object], within_s: float) -> bool:
        return await self.real.takes_writes(probe, within_s)
