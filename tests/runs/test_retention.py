"""Retention on real SQLite: ended executions older than the retention go with their events and
logs, in batches; recent ones and running ones stay; so do sessions that have not expired."""

import sqlite3
from datetime import timedelta

import pytest

from flowtrux.runs import retention
from flowtrux.runs.outcome import Outcome
from flowtrux.store import sessions
from flowtrux.store.executions import Finish, NewEvent, NodeLogRecord
from flowtrux.store.store import Store, sqlite_path
from flowtrux.timestamps import utc_now
from tests.runs.conftest import SaveWorkflow, new_execution


async def ended(
    store: Store, save_workflow: SaveWorkflow, execution_id: str, days_ago: float
) -> None:
    await new_execution(store, save_workflow, execution_id)
    outcome = Outcome.completed({"ok": True})
    await store.executions.append(
        [
            NewEvent(execution_id, 1, "start", {}),
            NodeLogRecord(execution_id, 1, "trigger", {"status": "success"}),
            Finish(execution_id, outcome.status, {"ok": True}, None,
                   utc_now() - timedelta(days=days_ago), 5),
        ]
    )  # fmt: skip


def count(store: Store, table: str) -> int:
    with sqlite3.connect(sqlite_path(store.url)) as database:
        found: int = database.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found


async def test_old_ended_executions_go_with_their_events_and_logs(
    store: Store, save_workflow: SaveWorkflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 3)  # several transactions
    for number in range(7):
        await ended(store, save_workflow, f"exec-old-{number}", days_ago=31)
    await ended(store, save_workflow, "exec-recent", days_ago=29)
    await new_execution(store, save_workflow, "exec-running")

    pruned = await retention.prune(store, retention_days=30)

    assert pruned[0] == 7
    assert await store.executions.status("exec-recent") is not None
    assert await store.executions.status("exec-running") is not None
    assert await store.executions.status("exec-old-0") is None
    assert count(store, "execution_events") == 1  # the recent one's
    assert count(store, "node_logs") == 1


async def test_expired_sessions_go_and_live_ones_stay(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    live_user = await store.users.create("live@example.com", "L", "hash")
    gone_user = await store.users.create("gone@example.com", "G", "hash")
    live = await store.sessions.create(live_user.id)
    monkeypatch.setattr(sessions, "SESSION_LIFETIME", timedelta(seconds=-1))
    await store.sessions.create(gone_user.id)

    assert count(store, "sessions") == 2
    _, pruned = await retention.prune(store, retention_days=30)
    assert pruned == 1
    assert count(store, "sessions") == 1
    assert await store.sessions.user_of(live) is not None
