"""How long a write waits: behind this process's own writes as long as they take, behind
another connection's lock no longer than the store's budget, however many writes queue for it."""

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from flowtrux.errors import StoreUnavailable
from flowtrux.store.database import Connection
from flowtrux.store.sqlite import SQLiteDatabase, open_sqlite
from tests.faults import write_lock_held

LOCK_WAIT_S = 0.5


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    async with open_sqlite(tmp_path / "waits.db", lock_wait_s=LOCK_WAIT_S) as db:
        await db.write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
        yield db


def insert(conn: Connection) -> None:
    conn.execute("INSERT INTO t VALUES (1)")


def long_insert(conn: Connection) -> None:
    insert(conn)
    time.sleep(3 * LOCK_WAIT_S)  # a large journal commit, say


async def test_writes_behind_a_long_write_of_this_process_wait_for_it(db: SQLiteDatabase) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(db.write, long_insert)
        await trio.sleep(0.05)
        # While it goes on, the store is not failing: it takes writes.
        assert await db.takes_writes(insert, within_s=0.1)
        await db.write(insert)  # waits its turn, 3 times the lock budget
    assert await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 2


async def test_writes_queued_on_another_connections_lock_all_give_up_within_the_budget(
    db: SQLiteDatabase,
) -> None:
    refused_after: list[float] = []

    async def one_write() -> None:
        started = trio.current_time()
        with pytest.raises(StoreUnavailable):
            await db.write(insert)
        refused_after.append(trio.current_time() - started)

    with write_lock_held(db.path):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one_write)
        assert not await db.takes_writes(insert, within_s=0.1)
    assert len(refused_after) == 4
    assert max(refused_after) < 2 * LOCK_WAIT_S, refused_after  # not 4 x 0.5 s for the last
    await db.write(insert)  # the lock gone, writes go through again
    assert await db.takes_writes(insert, within_s=1)
