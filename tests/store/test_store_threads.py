"""Queries in worker threads: results, errors, transactions, WAL readers and cancellation.

The design requires that a cancelled query stops (`conn.interrupt()`) instead of running to its
end in an abandoned thread, and that the connection is usable right after.
"""

import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from flowtrux.store.sqlite import SQLiteDatabase, open_sqlite
from flowtrux.store.threads import run_interruptible

# Counting to 10**9 takes minutes: if it ends in well under a second, it was interrupted.
COUNT_TO_A_BILLION = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000000)"
    " SELECT count(*) FROM c"
)
INSERT_A_BILLION = (
    "INSERT INTO t (x) WITH RECURSIVE c(x) AS"
    " (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000000) SELECT x FROM c"
)
CANCEL_AFTER = 0.2
PROMPT = 2.0  # generous bound for noisy machines; the query itself would take minutes
READERS = 4  # reader connections of the `sqlite_db` fixture (the default of `open_sqlite`)


class Boom(Exception):
    pass


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    """A bare database (no migrations) with one table `t (x INTEGER)`."""
    async with open_sqlite(tmp_path / "bare.db", readers=READERS) as db:
        await db.write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
        yield db


def count_rows(conn: sqlite3.Connection) -> int:
    count: int = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    return count


async def read_on_every_reader(db: SQLiteDatabase) -> set[int]:
    """Run READERS reads at once (they meet at a barrier, so each holds its own connection)."""
    barrier = threading.Barrier(READERS, timeout=5)
    connections: set[int] = set()

    def query(conn: sqlite3.Connection) -> None:
        barrier.wait()
        assert conn.execute("SELECT 1 + 1").fetchone()[0] == 2
        connections.add(id(conn))

    async with trio.open_nursery() as nursery:
        for _ in range(READERS):
            nursery.start_soon(db.read, query)
    return connections


# run_interruptible itself


async def test_run_interruptible_returns_the_value_computed_in_a_worker_thread() -> None:
    trio_thread = threading.get_ident()

    def work() -> tuple[int, int]:
        return 6 * 7, threading.get_ident()

    value, thread = await run_interruptible(work, lambda: None)

    assert value == 42
    assert thread != trio_thread


async def test_run_interruptible_propagates_the_exception_unchanged() -> None:
    error = Boom("from the thread")

    def work() -> None:
        raise error

    with pytest.raises(Boom) as raised:
        await run_interruptible(work, lambda: None)
    assert raised.value is error


async def test_cancel_interrupts_once_waits_for_the_call_then_raises_cancelled() -> None:
    stop = threading.Event()
    interrupts: list[int] = []
    finished = threading.Event()

    def interrupt() -> None:
        interrupts.append(threading.get_ident())
        stop.set()

    def work() -> None:
        try:
            if stop.wait(timeout=10):
                raise RuntimeError("interrupted")
        finally:
            finished.set()

    start = time.monotonic()
    with trio.move_on_after(0.1) as scope:
        await run_interruptible(work, interrupt)
    elapsed = time.monotonic() - start

    assert scope.cancelled_caught
    assert finished.is_set()  # the task waited for the thread to give up
    assert interrupts == [threading.get_ident()]  # once, from the Trio thread
    assert elapsed < PROMPT


async def test_a_call_that_finishes_despite_the_cancel_returns_its_value_then_cancels() -> None:
    interrupts: list[None] = []
    results: list[str] = []
    after_checkpoint: list[bool] = []

    def work() -> str:
        time.sleep(0.3)  # ignores the interrupt
        return "done"

    with trio.move_on_after(0.05) as scope:
        results.append(await run_interruptible(work, lambda: interrupts.append(None)))
        await trio.lowlevel.checkpoint()
        after_checkpoint.append(True)

    assert scope.cancelled_caught
    assert interrupts == [None]
    assert results == ["done"]
    assert after_checkpoint == []


async def test_an_already_cancelled_scope_never_starts_the_call() -> None:
    calls: list[None] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_interruptible(lambda: calls.append(None), lambda: None)

    assert scope.cancelled_caught
    assert calls == []


# SQLiteDatabase: reads and writes


async def test_read_and_write_return_their_values(sqlite_db: SQLiteDatabase) -> None:
    inserted = await sqlite_db.write(
        lambda conn: conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,), (3,)]).rowcount
    )

    assert inserted == 3
    assert await sqlite_db.read(count_rows) == 3
    assert (
        await sqlite_db.read(lambda conn: conn.execute("SELECT sum(x) FROM t").fetchone()[0]) == 6
    )


async def test_an_exception_of_a_read_propagates_unchanged(sqlite_db: SQLiteDatabase) -> None:
    error = Boom("read failed")

    def query(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1")
        raise error

    with pytest.raises(Boom) as raised:
        await sqlite_db.read(query)
    assert raised.value is error
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await sqlite_db.read(lambda conn: conn.execute("SELECT * FROM missing"))
    assert await sqlite_db.read(count_rows) == 0


async def test_a_write_that_raises_rolls_back_all_it_did(sqlite_db: SQLiteDatabase) -> None:
    await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (0)"))
    error = Boom("write failed")

    def change(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO t (x) VALUES (?)", [(1,), (2,)])
        conn.execute("UPDATE t SET x = 100 WHERE x = 0")
        conn.execute("DELETE FROM t WHERE x = 1")
        raise error

    with pytest.raises(Boom) as raised:
        await sqlite_db.write(change)

    assert raised.value is error
    assert await sqlite_db.read(lambda conn: [r[0] for r in conn.execute("SELECT x FROM t")]) == [0]
    # and the writer is free again
    await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (5)"))
    assert await sqlite_db.read(count_rows) == 2


async def test_a_failing_statement_rolls_back_the_whole_write(sqlite_db: SQLiteDatabase) -> None:
    def change(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (1)")
        conn.execute("INSERT INTO missing (x) VALUES (1)")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await sqlite_db.write(change)

    assert await sqlite_db.read(count_rows) == 0


async def test_a_read_runs_beside_an_open_write_and_sees_only_committed_rows(
    sqlite_db: SQLiteDatabase,
) -> None:
    inserted = threading.Event()
    finished: dict[str, float] = {}

    def slow_change(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (1)")
        inserted.set()
        time.sleep(0.5)  # the transaction stays open meanwhile

    async def write() -> None:
        await sqlite_db.write(slow_change)
        finished["write"] = time.monotonic()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        assert await trio.to_thread.run_sync(inserted.wait, 5)
        seen = await sqlite_db.read(count_rows)
        finished["read"] = time.monotonic()

    assert seen == 0  # the uncommitted row is invisible
    assert finished["read"] < finished["write"]  # and the reader did not wait for the writer
    assert await sqlite_db.read(count_rows) == 1


async def test_reads_run_concurrently_on_all_readers(sqlite_db: SQLiteDatabase) -> None:
    assert len(await read_on_every_reader(sqlite_db)) == READERS


# SQLiteDatabase: cancellation


async def test_a_cancelled_read_is_interrupted_promptly(sqlite_db: SQLiteDatabase) -> None:
    start = time.monotonic()
    with trio.move_on_after(CANCEL_AFTER) as scope:
        await sqlite_db.read(lambda conn: conn.execute(COUNT_TO_A_BILLION).fetchone())
    elapsed = time.monotonic() - start

    assert scope.cancelled_caught
    assert CANCEL_AFTER <= elapsed < PROMPT


async def test_every_reader_works_after_cancelled_reads(sqlite_db: SQLiteDatabase) -> None:
    await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (1)"))
    # Cancel as many long reads at once as there are readers: each connection gets interrupted.
    start = time.monotonic()
    with trio.move_on_after(CANCEL_AFTER) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(READERS):
                nursery.start_soon(
                    sqlite_db.read, lambda conn: conn.execute(COUNT_TO_A_BILLION).fetchone()
                )
    assert scope.cancelled_caught
    assert time.monotonic() - start < PROMPT

    assert await sqlite_db.read(count_rows) == 1
    assert len(await read_on_every_reader(sqlite_db)) == READERS


async def test_a_cancelled_write_is_interrupted_and_rolled_back(
    sqlite_db: SQLiteDatabase,
) -> None:
    def change(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (-1)")  # before the long statement
        conn.execute(INSERT_A_BILLION)

    start = time.monotonic()
    with trio.move_on_after(CANCEL_AFTER) as scope:
        await sqlite_db.write(change)
    elapsed = time.monotonic() - start

    assert scope.cancelled_caught
    assert CANCEL_AFTER <= elapsed < PROMPT
    assert await sqlite_db.read(count_rows) == 0  # nothing of the transaction is visible
    # the writer works right after, and so do the readers
    await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (7)"))
    assert await sqlite_db.read(lambda conn: [r[0] for r in conn.execute("SELECT x FROM t")]) == [7]
    assert len(await read_on_every_reader(sqlite_db)) == READERS


async def test_writes_queued_behind_a_cancelled_write_proceed(sqlite_db: SQLiteDatabase) -> None:
    async def long_write() -> None:
        with trio.move_on_after(CANCEL_AFTER):
            await sqlite_db.write(lambda conn: conn.execute(INSERT_A_BILLION))

    async def short_write(x: int) -> None:
        await trio.sleep(0.05)  # queued on the write lock behind the long one
        await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (?)", (x,)))

    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_write)
        for x in (1, 2, 3):
            nursery.start_soon(short_write, x)

    assert time.monotonic() - start < PROMPT
    rows = await sqlite_db.read(lambda conn: sorted(r[0] for r in conn.execute("SELECT x FROM t")))
    assert rows == [1, 2, 3]


async def test_a_cancel_between_statements_still_interrupts_the_next_one(
    sqlite_db: SQLiteDatabase,
) -> None:
    safety_net = 1.5  # interrupt the long query from inside after this, to bound the test

    def query(conn: sqlite3.Connection) -> object:
        time.sleep(0.3)  # Python work before the statement: the cancel arrives meanwhile
        timer = threading.Timer(safety_net, conn.interrupt)
        timer.start()
        try:
            return conn.execute(COUNT_TO_A_BILLION).fetchone()
        finally:
            timer.cancel()

    start = time.monotonic()
    with trio.move_on_after(0.1) as scope:
        await sqlite_db.read(query)
    elapsed = time.monotonic() - start

    assert scope.cancelled_caught
    assert elapsed < 1.0  # ~0.3 s if the cancel reached the statement; ~1.8 s when it is lost


async def test_a_write_whose_commit_fails_leaves_the_writer_usable(
    sqlite_db: SQLiteDatabase,
) -> None:
    await sqlite_db.write(lambda conn: conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
    await sqlite_db.write(
        lambda conn: conn.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id))")
    )

    def orphan_child(conn: sqlite3.Connection) -> None:
        # A deferred foreign key is checked at COMMIT: the statement succeeds, COMMIT fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("INSERT INTO child (p) VALUES (42)")

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await sqlite_db.write(orphan_child)

    await sqlite_db.write(lambda conn: conn.execute("INSERT INTO t (x) VALUES (1)"))
    assert await sqlite_db.read(count_rows) == 1
