"""Executions: their rows, the events their streams sent, and the final log of each node."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from flowtrux.engine.states import RunStatus
from flowtrux.store.database import Connection, Database
from flowtrux.timestamps import from_iso, to_iso

TERMINAL_EVENTS = frozenset({"complete", "error", "cancelled"})


@attrs.frozen
class NewExecution:
    id: str
    workflow_id: str
    workspace_id: str
    workflow_name: str
    trigger: str
    trigger_data: Any
    started_by: str | None
    process_id: str
    started_at: datetime


@attrs.frozen
class StoredEvent:
    """One event of a run's stream; `seq` counts from 1 per execution and is the SSE `id:`."""

    execution_id: str
    seq: int
    name: str
    data: str  # one line of JSON

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS

    @classmethod
    def from_row(cls, row: Any) -> StoredEvent:
        return cls(row["execution_id"], row["seq"], row["name"], row["data"])


@attrs.frozen
class NodeLogRecord:
    execution_id: str
    position: int
    node_id: str
    log: str  # JSON


@attrs.frozen
class Finish:
    """The one terminal write of a run."""

    execution_id: str
    status: RunStatus
    output: Any
    error: str | None
    finished_at: datetime
    duration_ms: int


@attrs.frozen
class Backgrounded:
    """The request that started the run went away and the run goes on."""

    execution_id: str


JournalRecord = StoredEvent | NodeLogRecord | Finish | Backgrounded


@attrs.frozen
class ExecutionSummary:
    id: str
    workflow_id: str
    workspace_id: str
    workflow_name: str
    status: RunStatus
    trigger: str
    background: bool
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None

    @classmethod
    def from_row(cls, row: Any) -> ExecutionSummary:
        return cls(
            row["id"],
            row["workflow_id"],
            row["workspace_id"],
            row["workflow_name"],
            RunStatus(row["status"]),
            row["trigger"],
            bool(row["background"]),
            from_iso(row["started_at"]),
            from_iso(row["finished_at"]) if row["finished_at"] else None,
            row["duration_ms"],
            row["error"],
        )


@attrs.frozen
class ExecutionDetail:
    summary: ExecutionSummary
    trigger_data: Any
    output: Any
    logs: list[Any]


@attrs.frozen
class ExecutionFilter:
    user_id: str  # only executions in the user's workspaces
    workflow_id: str | None = None
    status: RunStatus | None = None
    background: bool | None = None
    before: str | None = None  # an execution id: the page after it
    limit: int = 50


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class ExecutionStore:
    db: Database

    async def create(self, new: NewExecution) -> None:
        params = attrs.asdict(new)
        params.update(trigger_data=_json(new.trigger_data), started_at=to_iso(new.started_at))
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO executions (id, workflow_id, workspace_id, workflow_name, status,"
                " trigger, trigger_data, started_by, process_id, started_at)"
                " VALUES (:id, :workflow_id, :workspace_id, :workflow_name, 'RUNNING', :trigger,"
                " :trigger_data, :started_by, :process_id, :started_at)",
                params,
            )
        )

    async def append(self, records: Sequence[JournalRecord]) -> list[str]:
        """Write a batch of journal records in one transaction.

        Returns the ids of executions whose terminal write found them no longer RUNNING (another
        process declared them INTERRUPTED): their status is left as it was.
        """
        return await self.db.write(lambda conn: _append(conn, records))

    async def events_after(
        self, execution_id: str, after: int, limit: int = 500
    ) -> list[StoredEvent]:
        rows = await self.db.read(
            lambda conn: conn.execute(
                "SELECT * FROM execution_events WHERE execution_id = :id AND seq > :after"
                " ORDER BY seq LIMIT :limit",
                {"id": execution_id, "after": after, "limit": limit},
            ).fetchall()
        )
        return [StoredEvent.from_row(row) for row in rows]

    async def summaries(self, where: ExecutionFilter) -> list[ExecutionSummary]:
        sql, params = _summaries_query(where)
        rows = await self.db.read(lambda conn: conn.execute(sql, params).fetchall())
        return [ExecutionSummary.from_row(row) for row in rows]

    async def get(self, execution_id: str) -> ExecutionDetail | None:
        def fetch(conn: Connection) -> tuple[Any, list[Any]]:
            row = conn.execute("SELECT * FROM executions WHERE id = :id", {"id": execution_id})
            logs = conn.execute(
                "SELECT log FROM node_logs WHERE execution_id = :id ORDER BY position",
                {"id": execution_id},
            )
            return row.fetchone(), logs.fetchall()

        row, logs = await self.db.read(fetch)
        if row is None:
            return None
        return ExecutionDetail(
            ExecutionSummary.from_row(row),
            json.loads(row["trigger_data"]),
            json.loads(row["output"]) if row["output"] is not None else None,
            [json.loads(log["log"]) for log in logs],
        )


def _append(conn: Connection, records: Iterable[JournalRecord]) -> list[str]:
    events, logs, finishes, backgrounded = [], [], [], []
    for record in records:
        match record:
            case StoredEvent():
                events.append(attrs.asdict(record))
            case NodeLogRecord():
                logs.append(attrs.asdict(record))
            case Finish():
                finishes.append(record)
            case Backgrounded():
                backgrounded.append({"id": record.execution_id})
    conn.executemany(
        "INSERT INTO execution_events (execution_id, seq, name, data)"
        " VALUES (:execution_id, :seq, :name, :data)",
        events,
    )
    conn.executemany(
        "INSERT INTO node_logs (execution_id, position, node_id, log)"
        " VALUES (:execution_id, :position, :node_id, :log)",
        logs,
    )
    conn.executemany("UPDATE executions SET background = TRUE WHERE id = :id", backgrounded)
    return [finish.execution_id for finish in finishes if not _finish(conn, finish)]


def _finish(conn: Connection, finish: Finish) -> bool:
    cursor = conn.execute(
        "UPDATE executions SET status = :status, output = :output, error = :error,"
        " finished_at = :finished_at, duration_ms = :duration_ms"
        " WHERE id = :id AND status = 'RUNNING'",
        {
            "id": finish.execution_id,
            "status": finish.status.value,
            "output": _json(finish.output),
            "error": finish.error,
            "finished_at": to_iso(finish.finished_at),
            "duration_ms": finish.duration_ms,
        },
    )
    return cursor.rowcount == 1


def _summaries_query(where: ExecutionFilter) -> tuple[str, dict[str, Any]]:
    clauses = ["workspace_id IN (SELECT workspace_id FROM memberships WHERE user_id = :user)"]
    params: dict[str, Any] = {"user": where.user_id, "limit": where.limit}
    if where.workflow_id is not None:
        clauses.append("workflow_id = :workflow")
        params["workflow"] = where.workflow_id
    if where.status is not None:
        clauses.append("status = :status")
        params["status"] = where.status.value
    if where.background is not None:
        clauses.append("background = :background")
        params["background"] = where.background
    if where.before is not None:
        clauses.append(
            "(started_at, id) < (SELECT started_at, id FROM executions WHERE id = :before)"
        )
        params["before"] = where.before
    sql = (
        "SELECT * FROM executions WHERE "
        + " AND ".join(clauses)
        + " ORDER BY started_at DESC, id DESC LIMIT :limit"
    )
    return sql, params
