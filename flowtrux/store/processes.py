"""Leases of serving processes, the runs left behind by a process that stopped, and Stop asked
of the process that runs an execution."""

from collections.abc import Callable
from datetime import datetime

import attrs

from flowtrux.store.database import Connection, Database
from flowtrux.store.executions import Finish, NewEvent, finish_running
from flowtrux.strict_json import dumps
from flowtrux.timestamps import from_iso, to_iso, utc_now

# A RUNNING execution whose process holds no lease renewed since :cutoff, or is :abandoned_by.
_ORPHAN = (
    "status = 'RUNNING' AND (process_id = :abandoned_by OR process_id NOT IN"
    " (SELECT id FROM processes WHERE heartbeat_at >= :cutoff))"
)


@attrs.frozen
class OrphanedRun:
    execution_id: str
    started_at: datetime
    last_seq: int


RunEnd = Callable[[OrphanedRun], tuple[NewEvent, Finish]]  # its terminal event and status


@attrs.frozen
class ProcessStore:
    db: Database

    async def renew(self, process_id: str) -> None:
        """Take or renew this process's lease."""
        await self.db.write(renewal(process_id))

    async def renews(self, process_id: str, within_s: float) -> bool:
        """Whether the store takes writes, the renewal of this process's lease tells (unless a
        write is under way here)."""
        return await self.db.takes_writes(renewal(process_id), within_s)

    async def release(self, process_id: str) -> None:
        await self.db.write(
            lambda conn: conn.execute("DELETE FROM processes WHERE id = :id", {"id": process_id})
        )

    async def orphaned_runs(self, lapsed_before: datetime) -> list[str]:
        """RUNNING executions whose process has no lease renewed since `lapsed_before`; the
        leases that lapsed are forgotten."""

        def fetch(conn: Connection) -> list[str]:
            cutoff = to_iso(lapsed_before)
            conn.execute("DELETE FROM processes WHERE heartbeat_at < :cutoff", {"cutoff": cutoff})
            rows = conn.execute(
                f"SELECT id FROM executions WHERE {_ORPHAN}",
                {"cutoff": cutoff, "abandoned_by": None},
            )
            return [row["id"] for row in rows]

        return await self.db.write(fetch)

    async def end_orphan(
        self,
        execution_id: str,
        lapsed_before: datetime,
        end: RunEnd,
        *,
        abandoned_by: str | None = None,
    ) -> bool:
        """Store `end(orphan)`, the terminal event and status, if `execution_id` is RUNNING and
        its process has no lease renewed since `lapsed_before` (or is `abandoned_by`, a process
        that knows it does not run it). The check and both writes are one transaction, so a run
        is ended once, whoever else tries. False when it is not such a run."""

        def change(conn: Connection) -> bool:
            row = conn.execute(
                "SELECT id, started_at, (SELECT COALESCE(MAX(seq), 0) FROM execution_events"
                "  WHERE execution_id = executions.id) AS last_seq"
                f" FROM executions WHERE id = :id AND {_ORPHAN}",
                {"id": execution_id, "cutoff": to_iso(lapsed_before), "abandoned_by": abandoned_by},
            ).fetchone()
            if row is None:
                return False
            event, finish = end(
                OrphanedRun(row["id"], datetime.fromisoformat(row["started_at"]), row["last_seq"])
            )
            conn.execute(
                "INSERT INTO execution_events (execution_id, seq, name, data)"
                " VALUES (:execution_id, :seq, :name, :data)",
                {**attrs.asdict(event, recurse=False), "data": dumps(event.payload)},
            )
            return finish_running(conn, finish)

        return await self.db.write(change)

    async def request_stop(self, execution_id: str) -> bool:
        """Ask the process that runs `execution_id` to stop it. False when it is not RUNNING."""
        return await self.db.write(
            lambda conn: (
                conn.execute(
                    "UPDATE executions SET stop_requested = TRUE,"
                    " stop_requested_at = coalesce(stop_requested_at, :now)"
                    " WHERE id = :id AND status = 'RUNNING'",
                    {"id": execution_id, "now": to_iso(utc_now())},
                ).rowcount
                == 1
            )
        )

    async def stops_requested(self, process_id: str) -> list[tuple[str, datetime]]:
        """The RUNNING executions of `process_id` that another process was asked to stop, and
        when it was first asked."""
        rows = await self.db.read(
            lambda conn: conn.execute(
                "SELECT id, stop_requested_at FROM executions"
                " WHERE process_id = :process AND status = 'RUNNING' AND stop_requested",
                {"process": process_id},
            ).fetchall()
        )
        return [
            (row["id"], from_iso(row["stop_requested_at"] or to_iso(utc_now()))) for row in rows
        ]


def renewal(process_id: str) -> Callable[[Connection], object]:
    """The write that takes or renews a process's lease."""
    now = to_iso(utc_now())
    return lambda conn: conn.execute(
        "INSERT INTO processes (id, started_at, heartbeat_at) VALUES (:id, :now, :now)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        {"id": process_id, "now": now},
    )
