"""The embedded store: SQLite in WAL mode, driven from worker threads.

One writer connection (SQLite allows one writer at a time; a Trio lock queues writers without
holding a thread) and a few reader connections, which WAL lets run beside the writer. Every call
runs in a worker thread and is interrupted when its Trio scope is cancelled.

SQLite's own busy handler sleeps in the thread, where an interrupt cannot reach it, so it is kept
short: a call that finds the database locked by another connection tries again from Trio (where a
cancellation is prompt) for up to `lock_wait_s`, then raises StoreUnavailable, as it does at once
for the errors a later attempt may not meet (I/O, a full disk).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import trio

from flowtrux.backoff import pauses
from flowtrux.errors import StoreUnavailable
from flowtrux.store.threads import run_interruptible

T = TypeVar("T")

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",  # in WAL mode: durable against a crash of the process
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 50",  # in the thread, out of reach of an interrupt: keep it short
    "PRAGMA journal_size_limit = 33554432",  # a WAL grown by a large batch gives the disk back
)
PROGRESS_STEPS = 1000  # virtual machine steps between checks of a pending interrupt
LOCK_WAIT_S = 5.0  # how long one call waits, in all, for a lock another connection holds

# Primary result codes of errors that say "not now" rather than "never".
_LOCKED = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNAVAILABLE = _LOCKED | {
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_READONLY,
}


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
    def __init__(self, path: Path, readers: int, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = path
        self.lock_wait_s = lock_wait_s
        self._writer = _Connection(path)
        self._write_lock = trio.Lock()
        self._idle_readers = [_Connection(path) for _ in range(readers)]
        self._reader_slots = trio.Semaphore(readers)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader connection. Interrupted if cancelled. Raises
        StoreUnavailable. Checkpoints."""
        async with self._reader_slots:
            reader = self._idle_readers.pop()
            try:
                return await self._call(reader, query)
            finally:
                self._idle_readers.append(reader)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one transaction on the writer: all of it commits or none does.

        Interrupted (and rolled back) if cancelled. Raises StoreUnavailable. Checkpoints.
        """
        give_up_at = trio.current_time() + self.lock_wait_s  # the wait for earlier writes too
        with trio.move_on_at(give_up_at) as waiting:
            await self._write_lock.acquire()
        if waiting.cancelled_caught:
            raise StoreUnavailable(
                f"SQLite: writes waited in turn for {self.lock_wait_s:g} s (the database is locked)"
            )
        try:
            return await self._call(
                self._writer, lambda conn: _transaction(conn, change), give_up_at
            )
        finally:
            self._write_lock.release()

    async def _call(
        self,
        connection: _Connection,
        fn: Callable[[sqlite3.Connection], T],
        give_up_at: float | None = None,
    ) -> T:
        if give_up_at is None:
            give_up_at = trio.current_time() + self.lock_wait_s
        for pause in pauses(0.01, 0.2):
            try:
                return await connection.call(fn)
            except sqlite3.Error as exc:
                code = _primary_code(exc)
                locked_for_now = code in _LOCKED and trio.current_time() + pause < give_up_at
                if not locked_for_now and code in _UNAVAILABLE:
                    full = code == sqlite3.SQLITE_FULL
                    raise StoreUnavailable(f"SQLite: {exc}", full=full) from exc
                if not locked_for_now:
                    raise
            await trio.sleep(pause)
        raise AssertionError("pauses() never ends")

    def close(self) -> None:
        for connection in (self._writer, *self._idle_readers):
            connection.conn.close()


def _primary_code(exc: sqlite3.Error) -> int | None:
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


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
async def open_sqlite(
    path: Path, readers: int = 4, lock_wait_s: float = LOCK_WAIT_S
) -> AsyncIterator[SQLiteDatabase]:
    database = await trio.to_thread.run_sync(SQLiteDatabase, path, readers, lock_wait_s)
    try:
        yield database
    finally:
        database.close()
