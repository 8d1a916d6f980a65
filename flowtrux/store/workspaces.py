"""Workspaces and who is a member of them, with which role."""

from __future__ import annotations

from typing import Any

import attrs

from flowtrux.access import Role
from flowtrux.ids import new_id
from flowtrux.store.database import Connection, Database
from flowtrux.timestamps import to_iso, utc_now


@attrs.frozen
class Workspace:
    id: str
    name: str

    @classmethod
    def from_row(cls, row: Any) -> Workspace:
        return cls(row["id"], row["name"])


@attrs.frozen
class Membership:
    workspace: Workspace
    role: Role


@attrs.frozen
class WorkspaceStore:
    db: Database

    async def ensure(self, name: str) -> Workspace:
        """The workspace with this name, created if there is none."""

        def get_or_create(conn: Connection) -> Workspace:
            conn.execute(
                "INSERT INTO workspaces (id, name, created_at) VALUES (:id, :name, :now)"
                " ON CONFLICT (name) DO NOTHING",
                {"id": new_id("ws"), "name": name, "now": to_iso(utc_now())},
            )
            row = conn.execute("SELECT * FROM workspaces WHERE name = :name", {"name": name})
            return Workspace.from_row(row.fetchone())

        return await self.db.write(get_or_create)

    async def set_role(self, workspace_id: str, user_id: str, role: Role) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO memberships (workspace_id, user_id, role) VALUES (:ws, :user, :role)"
                " ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                {"ws": workspace_id, "user": user_id, "role": role.value},
            )
        )

    async def memberships(self, user_id: str) -> list[Membership]:
        rows = await self.db.read(
            lambda conn: conn.execute(
                "SELECT workspaces.*, memberships.role FROM memberships"
                " JOIN workspaces ON workspaces.id = memberships.workspace_id"
                " WHERE memberships.user_id = :user ORDER BY workspaces.name",
                {"user": user_id},
            ).fetchall()
        )
        return [Membership(Workspace.from_row(row), Role(row["role"])) for row in rows]

    async def role_of(self, user_id: str, workspace_id: str) -> Role | None:
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT role FROM memberships WHERE user_id = :user AND workspace_id = :ws",
                {"user": user_id, "ws": workspace_id},
            ).fetchone()
        )
        return None if row is None else Role(row["role"])
