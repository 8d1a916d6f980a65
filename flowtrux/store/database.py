"""What the query modules need from a database: reads and all-or-nothing writes."""

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")

Connection = sqlite3.Connection


class Database(Protocol):
    async def read(self, query: Callable[[Connection], T]) -> T:
        """Run `query` on a connection. Interrupted if cancelled. Checkpoints."""
        ...

    async def write(self, change: Callable[[Connection], T]) -> T:
        """Run `change` in one transaction. Interrupted and rolled back if cancelled."""
        ...
