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


def delete_some(
    conn: Connection, table: str, key: str, where: str, params: dict[str, object]
) -> int:
    """Delete at most `params["batch"]` rows of `table` (by its `key`) that match `where`; how
    many went. One small transaction at a time, for pruning beside other writers."""
    deleted: int = conn.execute(
        f"DELETE FROM {table} WHERE {key} IN"
        f" (SELECT {key} FROM {table} WHERE {where} LIMIT :batch)",
        params,
    ).rowcount
    return deleted
