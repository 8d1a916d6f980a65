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
from flowtrux.limiters import taken
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
LOCK_WAIT_S = 5.0  # how long calls wait, in all, for a lock another connection holds
LOCK_CHECK_S = 0.1  # how often a write waiting for this process's earlier ones looks at that
STILL_LOCKED_S = 1.0  # a lock last met longer ago than this is a new lock when met again

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
        # When its calls first found another connection's lock, and last did.
        self.locked_since: float | None = None
        self.locked_seen = 0.0

    def met_lock(self, locked: bool, now: float) -> float:
        """Note whether a call found another connection's lock; how long they have (0: not)."""
        if not locked:
            self.locked_since = None
            return 0.0
        since = self.locked_since
        if since is None or now - self.locked_seen > STILL_LOCKED_S:
            since = now  # a new lock
        self.locked_since, self.locked_seen = since, now
        return now - since

    def locked_for(self, now: float) -> float | None:
        """How long its calls have found another connection's lock, without a call that did
        not (nor a pause longer than STILL_LOCKED_S); None when they do not."""
        if self.locked_since is None or now - self.locked_seen > STILL_LOCKED_S:
            return None
        return now - self.locked_since

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
        self._failing = False  # the last write could not be made (StoreUnavailable)
        self._idle_readers = [_Connection(path) for _ in range(readers)]
        self._reader_slots = trio.Semaphore(readers)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader connection. Interrupted if cancelled. Raises
        StoreUnavailable. Checkpoints."""
        async with taken(self._reader_slots):  # `_call` checkpoints
            reader = self._idle_readers.pop()
            try:
                return await self._call(reader, query)
            finally:
                self._idle_readers.append(reader)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one transaction on the writer: all of it commits or none does.

        Interrupted (and rolled back) if cancelled. Raises StoreUnavailable. Checkpoints.
        """
        await self._take_write_lock()
        try:
            result = await self._call(self._writer, lambda conn: _transaction(conn, change))
        except StoreUnavailable:
            self._failing = True
            raise
        except sqlite3.Error:
            self._failing = False  # it answered, if only to refuse
            raise
        finally:
            self._write_lock.release()
        self._failing = False
        return result

    async def takes_writes(
        self, probe: Callable[[sqlite3.Connection], object], within_s: float
    ) -> bool:
        """Whether the store takes writes: `probe` is written when no write is under way here;
        while one is (a large commit may take seconds), the last write's outcome tells."""
        if not self._write_lock.locked():
            with trio.move_on_after(within_s):
                try:
                    await self.write(probe)
                except StoreUnavailable:
                    return False
                return True
        return not self._failing

    async def _take_write_lock(self) -> None:
        """Wait for this process's earlier writes, as long as they take; but not past the time
        another connection's lock makes any of them wait (the k-th of k writes waiting on such
        a lock used to wait k times as long)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._write_lock.acquire_nowait()  # free: no scheduling pass (`_call` checkpoints)
            return
        except trio.WouldBlock:
            pass
        while True:
            with trio.move_on_after(LOCK_CHECK_S):
                await self._write_lock.acquire()
                return
            locked_s = self._writer.locked_for(trio.current_time())
            if locked_s is not None and locked_s >= self.lock_wait_s:
                raise StoreUnavailable(f"SQLite: the database is locked ({locked_s:.1f} s)")

    async def _call(self, connection: _Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        for pause in pauses(0.01, 0.2):
            try:
                result = await connection.call(fn)
            except sqlite3.Error as exc:
                code = _primary_code(exc)
                locked_s = connection.met_lock(code in _LOCKED, trio.current_time())
                locked_for_now = code in _LOCKED and locked_s + pause < self.lock_wait_s
                if not locked_for_now and code in _UNAVAILABLE:
                    full = code == sqlite3.SQLITE_FULL
                    raise StoreUnavailable(f"SQLite: {exc}", full=full) from exc
                if not locked_for_now:
                    raise
            else:
                connection.met_lock(False, trio.current_time())
                return result
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
