"""The embedded store: SQLite in WAL mode, driven from worker threads.

One writer connection (SQLite allows one writer at a time; a Trio lock queues writers without
holding a thread) and a few reader connections, which WAL lets run beside the writer. Every call
runs in a worker thread and is interrupted when its Trio scope is cancelled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import trio

from flowtrux.store.threads import run_interruptible

T = TypeVar("T")

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",  # in WAL mode: durable against a crash of the process
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)
PROGRESS_STEPS = 1000  # virtual machine steps between checks of a pending interrupt


class _Connection:
    """A connection that can be interrupted from the Trio thread, even between statements:
    `sqlite3.Connection.interrupt` only stops a statement that is running, so a flag checked
    by a progress handler stops the ones the same call would start afterwards."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            self.conn.execute(pragma)
        self.conn.set_progress_handler(self._should_stop, PROGRESS_STEPS)
        self._stop = False

    def _should_stop(self) -> int:
        return int(self._stop)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._stop = False
        return await run_interruptible(lambda: fn(self.conn), self._interrupt)

    def _interrupt(self) -> None:
        self._stop = True
        self.conn.interrupt()


class SQLiteDatabase:
    def __init__(self, path: Path, readers: int) -> None:
        self.path = path
        self._writer = _Connection(path)
        self._write_lock = trio.Lock()
        self._idle_readers = [_Connection(path) for _ in range(readers)]
        self._reader_slots = trio.Semaphore(readers)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader connection. Interrupted if cancelled. Checkpoints."""
        async with self._reader_slots:
            reader = self._idle_readers.pop()
            try:
                return await reader.call(query)
            finally:
                self._idle_readers.append(reader)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one transaction on the writer: all of it commits or none does.

        Interrupted (and rolled back) if cancelled. Checkpoints.
        """
        async with self._write_lock:
            return await self._writer.call(lambda conn: _transaction(conn, change))

    def close(self) -> None:
        for connection in (self._writer, *self._idle_readers):
            connection.conn.close()


def _transaction(conn: sqlite3.Connection, change: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = change(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return result


@asynccontextmanager
async def open_sqlite(path: Path, readers: int = 4) -> AsyncIterator[SQLiteDatabase]:
    database = await trio.to_thread.run_sync(SQLiteDatabase, path, readers)
    try:
        yield database
    finally:
        database.close()
