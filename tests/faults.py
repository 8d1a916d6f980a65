"""Faults a test causes in a real store: SQLite's write lock held by another connection."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
