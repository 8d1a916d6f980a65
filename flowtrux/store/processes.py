"""Leases of serving processes, and the runs left behind by a process that stopped."""

from datetime import datetime

import attrs

from flowtrux.store.database import Connection, Database
from flowtrux.timestamps import to_iso, utc_now


@attrs.frozen
class OrphanedRun:
    execution_id: str
    started_at: datetime
    last_seq: int


@attrs.frozen
class ProcessStore:
    db: Database

    async def renew(self, process_id: str) -> None:
        """Take or renew this process's lease."""
        now = to_iso(utc_now())
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO processes (id, started_at, heartbeat_at) VALUES (:id, :now, :now)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                {"id": process_id, "now": now},
            )
        )

    async def release(self, process_id: str) -> None:
        await self.db.write(
            lambda conn: conn.execute("DELETE FROM processes WHERE id = :id", {"id": process_id})
        )

    async def orphaned_runs(self, lapsed_before: datetime) -> list[OrphanedRun]:
        """RUNNING executions whose process has no lease renewed since `lapsed_before`."""

        def fetch(conn: Connection) -> list[OrphanedRun]:
            conn.execute(
                "DELETE FROM processes WHERE heartbeat_at < :cutoff",
                {"cutoff": to_iso(lapsed_before)},
            )
            rows = conn.execute(
                "SELECT id, started_at,"
                " (SELECT COALESCE(MAX(seq), 0) FROM execution_events"
                "  WHERE execution_id = executions.id) AS last_seq"
                " FROM executions WHERE status = 'RUNNING'"
                " AND process_id NOT IN (SELECT id FROM processes)"
            ).fetchall()
            return [
                OrphanedRun(row["id"], datetime.fromisoformat(row["started_at"]), row["last_seq"])
                for row in rows
            ]

        return await self.db.write(fetch)
