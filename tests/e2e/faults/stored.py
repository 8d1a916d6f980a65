"""What the store holds of the harness's runs, read from the server's SQLite file on a read-only
connection of the test's own (in a worker thread): the execution rows, their events as stored
(the SSE `id:` is `seq`, the data the stored JSON text) and their node logs."""

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import attrs
import trio

from flowtrux.store.executions import LOG_JSON, WITH_EVENTS
from tests.e2e.faults.frames import Event


@attrs.frozen
class StoredLog:
    """A node's log as the history reads it (None: what it refers to is not stored), and the
    `node_complete` event it is (None: stored on its own, as a skipped node's is)."""

    node_id: str
    value: Any
    event_seq: int | None


@attrs.frozen
class StoredRun:
    execution_id: str
    status: str
    error: str | None
    output: Any
    background: bool
    events: tuple[Event, ...]
    logs: tuple[StoredLog, ...]  # in the order they were written

    def event(self, seq: int) -> Event | None:
        """The stored event `seq`, if any (events are stored from 1 without gaps when all is
        well; a gap is found by the invariants, not hidden here)."""
        found = [event for event in self.events if event.seq == seq]
        return found[0] if found else None


def _connect(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def _read_runs(database: Path, execution_ids: list[str]) -> dict[str, StoredRun]:
    runs: dict[str, StoredRun] = {}
    with closing(_connect(database)) as conn:
        conn.execute("BEGIN")  # one snapshot for all of it
        for execution_id in execution_ids:
            row = conn.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchone()
            if row is None:
                continue
            events = tuple(
                Event(seq, name, data)
                for seq, name, data in conn.execute(
                    "SELECT seq, name, data FROM execution_events WHERE execution_id = ?"
                    " ORDER BY seq",
                    (execution_id,),
                )
            )
            logs = tuple(
                StoredLog(node_id, None if log is None else json.loads(log), event_seq)
                for node_id, log, event_seq in conn.execute(
                    f"SELECT node_logs.node_id, {LOG_JSON}, node_logs.event_seq"
                    f" FROM {WITH_EVENTS}"
                    " WHERE node_logs.execution_id = ? ORDER BY node_logs.position",
                    (execution_id,),
                )
            )
            output = None if row["output"] is None else json.loads(row["output"])
            runs[execution_id] = StoredRun(
                execution_id, row["status"], row["error"], output, bool(row["background"]),
                events, logs,
            )  # fmt: skip
        conn.rollback()
    return runs


async def read_runs(database: Path, execution_ids: Iterable[str]) -> dict[str, StoredRun]:
    """The stored runs among `execution_ids`, by id (an id the store does not hold is absent)."""
    return await trio.to_thread.run_sync(_read_runs, database, list(execution_ids))


def _running(database: Path) -> list[str]:
    with closing(_connect(database)) as conn:
        rows = conn.execute("SELECT id FROM executions WHERE status = 'RUNNING' ORDER BY id")
        return [execution_id for (execution_id,) in rows]


async def running(database: Path) -> list[str]:
    """The executions the store holds as RUNNING."""
    return await trio.to_thread.run_sync(_running, database)


async def statuses(database: Path) -> dict[str, str]:
    """Every execution's stored status, by id."""

    def read() -> dict[str, str]:
        with closing(_connect(database)) as conn:
            return dict(conn.execute("SELECT id, status FROM executions"))

    return await trio.to_thread.run_sync(read)


async def until_none_running(database: Path, within_s: float) -> list[str]:
    """Wait (`within_s` at most) until the store holds no RUNNING execution; those still
    RUNNING then."""
    deadline = trio.current_time() + within_s
    while True:
        left = await running(database)
        if not left or trio.current_time() > deadline:
            return left
        await trio.sleep(0.05)


async def until_ended(database: Path, execution_id: str, within_s: float) -> None:
    """Wait (`within_s` at most) until `execution_id` is stored and no longer RUNNING."""
    deadline = trio.current_time() + within_s
    while trio.current_time() < deadline:
        if await status_of(database, execution_id) not in (None, "RUNNING"):
            return
        await trio.sleep(0.02)


async def status_of(database: Path, execution_id: str) -> str | None:
    """The stored status of `execution_id`, None while the store does not hold it."""

    def read() -> str | None:
        with closing(_connect(database)) as conn:
            row = conn.execute("SELECT status FROM executions WHERE id = ?", (execution_id,))
            found = row.fetchone()
            return None if found is None else str(found[0])

    return await trio.to_thread.run_sync(read)
