"""Executions: their rows, the events their streams sent, and the final log of each node."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from flowtrux.engine.states import RunStatus
from flowtrux.store.database import Connection, Database, delete_some, insert_rows
from flowtrux.strict_json import dumps, utf8
from flowtrux.timestamps import from_iso, to_iso

TERMINAL_EVENTS = frozenset({"complete", "error", "cancelled"})
PAGE_BYTES = 1024 * 1024  # what one page of stored events may hold, give or take one event
PAGE_EVENTS = 1000


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
    background: bool = False  # nobody waits for it from its start (a webhook's `minimal`)


@attrs.frozen
class NewEvent:
    """An event of a run's stream on its way to the store, which encodes `payload` as JSON:
    a value JSON cannot carry is refused there, with the batch it came in."""

    execution_id: str
    seq: int
    name: str
    payload: Any

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS


@attrs.frozen
class StoredEvent:
    """One stored event of a run's stream; `seq` counts from 1 per execution and is the SSE
    `id:`."""

    execution_id: str
    seq: int
    name: str
    data: str  # one line of JSON

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS

    @property
    def size(self) -> int:
        """Roughly the bytes it holds (its JSON, in characters)."""
        return len(self.data)


@attrs.frozen
class EventPage:
    """Stored events in order; `complete` when no stored event followed the last of them."""

    events: list[StoredEvent]
    complete: bool


@attrs.frozen
class NodeLogRecord:
    execution_id: str
    position: int  # counts from 1 per execution, in the order the logs were written
    node_id: str
    log: Any  # the ExecutionLog as a JSON object; encoded by the store
    event_seq: int | None = None  # the node_complete event that is this log: `log` is not
    # stored again, the history reads the event's data (one copy of a large output, not two)


# A node's log: its own JSON (a skipped node), else the data of its node_complete event.
LOG_JSON = "COALESCE(node_logs.log, execution_events.data)"
WITH_EVENTS = (
    "node_logs LEFT JOIN execution_events ON execution_events.execution_id ="
    " node_logs.execution_id AND execution_events.seq = node_logs.event_seq"
)


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


JournalRecord = NewEvent | NodeLogRecord | Finish | Backgrounded


@attrs.frozen
class Appended:
    events: list[StoredEvent]  # the batch's events as stored, in order
    stale: list[str]  # executions whose terminal write found them no longer RUNNING


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
class StoredExecution:
    """An execution's row with its values as the stored JSON (UTF-8), to send on unparsed."""

    summary: ExecutionSummary
    trigger_data: bytes
    output: bytes  # `null` until the run has ended
    callbacks: bytes  # the tries of its completion callback, a JSON array


@attrs.frozen
class LogPage:
    """Node logs in order, as the inside of a JSON array (`log,log,…`, UTF-8)."""

    json: bytes
    last_position: int
    complete: bool  # no stored log followed the last of them


@attrs.frozen
class ExecutionFilter:
    user_id: str  # only executions in the user's workspaces
    workflow_id: str | None = None
    status: RunStatus | None = None
    background: bool | None = None
    before: str | None = None  # an execution id: the page after it
    limit: int = 50


@attrs.frozen
class ExecutionStore:
    db: Database

    async def create(self, new: NewExecution) -> None:
        params = attrs.asdict(new, recurse=False)
        params.update(started_at=to_iso(new.started_at))

        def insert(conn: Connection) -> None:  # the trigger data is encoded here, in a thread
            conn.execute(
                "INSERT INTO executions (id, workflow_id, workspace_id, workflow_name, status,"
                " trigger, trigger_data, started_by, process_id, started_at, background)"
                " VALUES (:id, :workflow_id, :workspace_id, :workflow_name, 'RUNNING', :trigger,"
                " :trigger_data, :started_by, :process_id, :started_at, :background)",
                {**params, "trigger_data": dumps(new.trigger_data)},
            )

        await self.db.write(insert)

    async def append(self, records: Sequence[JournalRecord]) -> Appended:
        """Encode and write a batch of journal records in one transaction: all or nothing.

        An execution whose terminal write found it no longer RUNNING (another process declared
        it INTERRUPTED) keeps its status and is named in `stale`. Raises StoreUnavailable when
        the store cannot answer now; anything else it raises means the store refused a record
        (one JSON cannot carry, one that breaks a constraint).
        """
        return await self.db.write(lambda conn: _append(conn, records))

    async def events_after(
        self,
        execution_id: str,
        after: int,
        *,
        max_bytes: int = PAGE_BYTES,
        max_events: int = PAGE_EVENTS,
    ) -> EventPage:
        """The stored events after sequence number `after`, as many as fit `max_bytes` (at
        least one) and `max_events`."""

        def fetch(conn: Connection) -> EventPage:
            rows = conn.execute(
                "SELECT seq, name, data FROM execution_events"
                " WHERE execution_id = :id AND seq > :after ORDER BY seq LIMIT :limit",
                {"id": execution_id, "after": after, "limit": max_events + 1},
            )
            events: list[StoredEvent] = []
            size = 0
            for row in rows:  # rows come one at a time: a page never holds the whole run
                event = StoredEvent(execution_id, row["seq"], row["name"], row["data"])
                if len(events) == max_events or (events and size + event.size > max_bytes):
                    return EventPage(events, complete=False)
                events.append(event)
                size += event.size
            return EventPage(events, complete=True)

        return await self.db.read(fetch)

    async def stored(self, execution_id: str) -> StoredExecution | None:
        """The execution's row, its values left as the JSON they are stored as."""
        return await self.db.read(lambda conn: _stored(conn, execution_id))

    async def stored_with_logs(self, execution_id: str) -> tuple[StoredExecution, LogPage] | None:
        """`stored`, and the first page of `logs_after(execution_id, 0)`, in one read."""

        def fetch(conn: Connection) -> tuple[StoredExecution, LogPage] | None:
            execution = _stored(conn, execution_id)
            if execution is None:
                return None
            return execution, _logs_after(conn, execution_id, 0, PAGE_BYTES)

        return await self.db.read(fetch)

    async def logs_after(
        self, execution_id: str, after: int, *, max_bytes: int = PAGE_BYTES
    ) -> LogPage:
        """The node logs after position `after`, as stored, as many as fit `max_bytes` (at
        least one). Encoded where they are read, so large ones never hold up the event loop."""
        return await self.db.read(lambda conn: _logs_after(conn, execution_id, after, max_bytes))

    async def record_callback(self, execution_id: str, attempt: dict[str, Any]) -> None:
        """Add one try of the execution's completion callback to its history."""

        def add(conn: Connection) -> None:
            row = conn.execute(
                "SELECT callbacks FROM executions WHERE id = :id", {"id": execution_id}
            ).fetchone()
            if row is None:
                return  # pruned meanwhile
            tries = json.loads(row["callbacks"] or "[]")
            conn.execute(
                "UPDATE executions SET callbacks = :tries WHERE id = :id",
                {"id": execution_id, "tries": dumps([*tries, attempt])},
            )

        await self.db.write(add)

    async def prune_ended_before(self, cutoff: datetime, batch: int) -> int:
        """Delete at most `batch` executions that ended before `cutoff`, with their events and
        logs (by cascade), in one transaction; how many were deleted."""

        where = "status != 'RUNNING' AND finished_at < :cutoff"
        params = {"cutoff": to_iso(cutoff), "batch": batch}
        return await self.db.write(
            lambda conn: delete_some(conn, "executions", "id", where, params)
        )

    async def succeeded(self, execution_id: str, node_id: str) -> bool:
        """Whether the node ran in the execution and succeeded."""

        def fetch(conn: Connection) -> bool:
            row = conn.execute(
                f"SELECT {LOG_JSON} AS log FROM {WITH_EVENTS}"
                " WHERE node_logs.execution_id = :id AND node_logs.node_id = :node",
                {"id": execution_id, "node": node_id},
            ).fetchone()
            return (
                row is not None
                and row["log"] is not None
                and json.loads(row["log"]).get("status") == "success"
            )

        return await self.db.read(fetch)

    async def last_output(self, execution_id: str) -> bytes | None:
        """The output (stored JSON, UTF-8) of the node that succeeded last; None when none did.
        Read where it is stored: the logs are parsed there, one at a time, from the last."""

        def fetch(conn: Connection) -> bytes | None:
            rows = conn.execute(
                f"SELECT {LOG_JSON} AS log FROM {WITH_EVENTS}"
                " WHERE node_logs.execution_id = :id ORDER BY node_logs.position DESC",
                {"id": execution_id},
            )
            for row in rows:
                if row["log"] is None:
                    continue
                log = json.loads(row["log"])
                if log.get("status") == "success":
                    return utf8(dumps(log.get("output")))
            return None

        return await self.db.read(fetch)

    async def status(self, execution_id: str) -> RunStatus | None:
        """The execution's status as stored now; None when there is no such execution."""
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT status FROM executions WHERE id = :id", {"id": execution_id}
            ).fetchone()
        )
        return None if row is None else RunStatus(row["status"])

    async def runs_elsewhere(self, execution_id: str, process_id: str) -> bool:
        """Whether the execution is RUNNING in the store for a process other than
        `process_id`."""
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT 1 FROM executions"
                " WHERE id = :id AND status = 'RUNNING' AND process_id != :process",
                {"id": execution_id, "process": process_id},
            ).fetchone()
        )
        return row is not None

    async def summaries(self, where: ExecutionFilter) -> list[ExecutionSummary]:
        sql, params = _summaries_query(where)
        rows = await self.db.read(lambda conn: conn.execute(sql, params).fetchall())
        return [ExecutionSummary.from_row(row) for row in rows]


def _stored(conn: Connection, execution_id: str) -> StoredExecution | None:
    row = conn.execute("SELECT * FROM executions WHERE id = :id", {"id": execution_id})
    found = row.fetchone()
    if found is None:
        return None
    output, callbacks = found["output"], found["callbacks"]
    return StoredExecution(
        ExecutionSummary.from_row(found),
        utf8(found["trigger_data"]),
        b"null" if output is None else utf8(output),
        b"[]" if callbacks is None else utf8(callbacks),
    )


def _logs_after(conn: Connection, execution_id: str, after: int, max_bytes: int) -> LogPage:
    rows = conn.execute(
        f"SELECT node_logs.position, {LOG_JSON} AS log FROM {WITH_EVENTS}"
        " WHERE node_logs.execution_id = :id AND node_logs.position > :after"
        " ORDER BY node_logs.position",
        {"id": execution_id, "after": after},
    )
    logs: list[bytes] = []
    size, position = 0, after
    for row in rows:  # rows come one at a time: a page never holds the whole run
        if row["log"] is None:  # its event could not be stored, not even a stand-in
            position = row["position"]
            continue
        log = utf8(row["log"])
        if logs and size + len(log) > max_bytes:
            return LogPage(b",".join(logs), position, complete=False)
        logs.append(log)
        size += len(log)
        position = row["position"]
    return LogPage(b",".join(logs), position, complete=True)


def _append(conn: Connection, records: Iterable[JournalRecord]) -> Appended:
    events: list[StoredEvent] = []
    logs: list[tuple[str, int, str, str | None, int | None]] = []
    finishes, backgrounded = [], []
    for record in records:
        match record:
            case NewEvent(execution_id, seq, name, payload):
                events.append(StoredEvent(execution_id, seq, name, dumps(payload)))
            case NodeLogRecord(execution_id, position, node_id, log, None):
                logs.append((execution_id, position, node_id, dumps(log), None))
            case NodeLogRecord(execution_id, position, node_id, _, event_seq):
                logs.append((execution_id, position, node_id, None, event_seq))
            case Finish():
                finishes.append(record)
            case Backgrounded():
                backgrounded.append({"id": record.execution_id})
    insert_rows(
        conn,
        "execution_events",
        ("execution_id", "seq", "name", "data"),
        [(event.execution_id, event.seq, event.name, event.data) for event in events],
    )
    columns = ("execution_id", "position", "node_id", "log", "event_seq")
    insert_rows(conn, "node_logs", columns, logs)
    conn.executemany("UPDATE executions SET background = TRUE WHERE id = :id", backgrounded)
    stale = [finish.execution_id for finish in finishes if not finish_running(conn, finish)]
    return Appended(events, stale)


def finish_running(conn: Connection, finish: Finish) -> bool:
    """Store `finish` if the execution is still RUNNING; False when it was not."""
    cursor = conn.execute(
        "UPDATE executions SET status = :status, output = :output, error = :error,"
        " finished_at = :finished_at, duration_ms = :duration_ms"
        " WHERE id = :id AND status = 'RUNNING'",
        {
            "id": finish.execution_id,
            "status": finish.status.value,
            "output": dumps(finish.output),
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
