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


class SQLiteDatabase:
    def __init__(self, path: Path, readers: int) -> None:
        self.path = path
        self._writer = self._connect()
        self._write_lock = trio.Lock()
        self._idle_readers = [self._connect() for _ in range(readers)]
        self._reader_slots = trio.Semaphore(readers)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            conn.execute(pragma)
        return conn

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader connection. Interrupted if cancelled. Checkpoints."""
        async with self._reader_slots:
            conn = self._idle_readers.pop()
            try:
                return await run_interruptible(lambda: query(conn), conn.interrupt)
            finally:
                self._idle_readers.append(conn)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one transaction on the writer: all of it commits or none does.

        Interrupted (and rolled back) if cancelled. Checkpoints.
        """
        async with self._write_lock:
            return await run_interruptible(
                lambda: _transaction(self._writer, change), self._writer.interrupt
            )

    def close(self) -> None:
        for conn in (self._writer, *self._idle_readers):
            conn.close()


def _transaction(conn: sqlite3.Connection, change: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = change(conn)
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")
    return result


@asynccontextmanager
async def open_sqlite(path: Path, readers: int = 4) -> AsyncIterator[SQLiteDatabase]:
    database = await trio.to_thread.run_sync(SQLiteDatabase, path, readers)
    try:
        yield database
    finally:
        database.close()
