"""What the query modules need from a database: reads and all-or-nothing writes."""

import sqlite3
from collections.abc import Callable, Sequence
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

    async def takes_writes(self, probe: Callable[[Connection], object], within_s: float) -> bool:
        """Whether the database takes writes now (`probe` is written, within `within_s`, unless
        a write is under way: then its outcome tells)."""
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


ROWS_PER_INSERT = 64


def insert_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """Insert `rows` into `table`, ROWS_PER_INSERT in one statement. sqlite3 lets go of the
    GIL around each statement it steps: with one statement a row, a writer thread beside a
    busy event loop waited for the GIL at every row, and a journal commit took several times
    as long as its SQL."""
    one_row = "(" + ", ".join("?" * len(columns)) + ")"
    for start in range(0, len(rows), ROWS_PER_INSERT):
        batch = rows[start : start + ROWS_PER_INSERT]
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            + ", ".join([one_row] * len(batch)),
            [value for row in batch for value in row],
        )
