"""Stored workflows: the document as submitted, so nothing an editor adds is lost."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime
from typing import Any

import attrs

from flowtrux.access import Role
from flowtrux.engine.graph import Graph
from flowtrux.ids import new_id
from flowtrux.store.database import Connection, Database
from flowtrux.timestamps import from_iso, to_iso, utc_now

KEPT_DOCUMENT_BYTES = 2 * 1024 * 1024  # of text; parsed, about ten times as much


@attrs.frozen
class Workflow:
    id: str
    workspace_id: str
    name: str
    nodes: list[Any]
    edges: list[Any]
    created_at: datetime
    updated_at: datetime
    graph: Graph = attrs.field(eq=False, repr=False)

    @classmethod
    def from_row(cls, row: Any, documents: Documents) -> Workflow:
        document = documents.parse(row["id"], row["definition"])
        return cls(
            row["id"],
            row["workspace_id"],
            row["name"],
            document.nodes,
            document.edges,
            from_iso(row["created_at"]),
            from_iso(row["updated_at"]),
            document.graph,
        )


@attrs.frozen
class Document:
    """A workflow's stored document, parsed. Shared by every run of it: never changed."""

    text: str
    nodes: list[Any]
    edges: list[Any]
    graph: Graph

    @classmethod
    def parse(cls, text: str) -> Document:
        definition = json.loads(text)
        nodes, edges = definition["nodes"], definition["edges"]
        return cls(text, nodes, edges, Graph.from_json(nodes, edges))


@attrs.define(eq=False)
class Documents:
    """The last parse of each workflow's document, kept while its stored text stays the same
    (parsing it again took about a tenth of a streamed run of a 1,000-node chain), up to
    `max_bytes` of text in all; the least recently used go first."""

    max_bytes: int = KEPT_DOCUMENT_BYTES
    _kept: OrderedDict[str, Document] = attrs.field(factory=OrderedDict, init=False)
    _bytes: int = attrs.field(default=0, init=False)

    def parse(self, workflow_id: str, text: str) -> Document:
        kept = self._kept.get(workflow_id)
        if kept is not None and kept.text == text:
            self._kept.move_to_end(workflow_id)
            return kept
        document = Document.parse(text)
        self._forget(workflow_id)
        if len(text) <= self.max_bytes // 4:
            self._kept[workflow_id] = document
            self._bytes += len(text)
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._kept)))
        return document

    def _forget(self, workflow_id: str) -> None:
        if (gone := self._kept.pop(workflow_id, None)) is not None:
            self._bytes -= len(gone.text)


@attrs.frozen
class WorkflowSummary:
    id: str
    workspace_id: str
    name: str
    updated_at: datetime


def _definition(nodes: list[Any], edges: list[Any]) -> str:
    return json.dumps({"nodes": nodes, "edges": edges}, separators=(",", ":"))


@attrs.frozen
class WorkflowStore:
    db: Database
    documents: Documents = attrs.field(factory=Documents)

    async def create(
        self, workspace_id: str, name: str, nodes: list[Any], edges: list[Any]
    ) -> Workflow:
        now = utc_now()
        graph = Graph.from_json(nodes, edges)
        workflow = Workflow(new_id("wf"), workspace_id, name, nodes, edges, now, now, graph)
        await self.db.write(
            lambda conn: conn.execute(
                "INSERT INTO workflows (id, workspace_id, name, definition, created_at, updated_at)"
                " VALUES (:id, :ws, :name, :definition, :now, :now)",
                {
                    "id": workflow.id,
                    "ws": workspace_id,
                    "name": name,
                    "definition": _definition(nodes, edges),
                    "now": to_iso(now),
                },
            )
        )
        return workflow

    async def get(self, workflow_id: str) -> Workflow | None:
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT * FROM workflows WHERE id = :id", {"id": workflow_id}
            ).fetchone()
        )
        return None if row is None else Workflow.from_row(row, self.documents)

    def with_role(self, row: Any) -> tuple[Workflow, Role | None] | None:
        """The workflow, and the caller's role in its workspace (None: not a member), from the
        row `row_with_role` read (None: no such workflow)."""
        if row is None:
            return None
        role = None if row["caller_role"] is None else Role(row["caller_role"])
        return Workflow.from_row(row, self.documents), role

    async def in_workspace(self, workspace_id: str) -> list[WorkflowSummary]:
        rows = await self.db.read(
            lambda conn: conn.execute(
                "SELECT id, workspace_id, name, updated_at FROM workflows"
                " WHERE workspace_id = :ws ORDER BY updated_at DESC, id",
                {"ws": workspace_id},
            ).fetchall()
        )
        return [
            WorkflowSummary(
                row["id"], row["workspace_id"], row["name"], from_iso(row["updated_at"])
            )
            for row in rows
        ]

    async def update(
        self, workflow_id: str, name: str, nodes: list[Any], edges: list[Any]
    ) -> Workflow | None:
        def change(conn: Connection) -> Any:
            conn.execute(
                "UPDATE workflows SET name = :name, definition = :definition, updated_at = :now"
                " WHERE id = :id",
                {
                    "id": workflow_id,
                    "name": name,
                    "definition": _definition(nodes, edges),
                    "now": to_iso(utc_now()),
                },
            )
            return conn.execute(
                "SELECT * FROM workflows WHERE id = :id", {"id": workflow_id}
            ).fetchone()

        row = await self.db.write(change)
        return None if row is None else Workflow.from_row(row, self.documents)

    async def set_webhook_token_hash(self, workflow_id: str, token_hash: str) -> None:
        """Store the hash of the workflow's new webhook token, voiding the old one."""

        def change(conn: Connection) -> None:
            conn.execute(
                "UPDATE workflows SET webhook_token_hash = :hash WHERE id = :id",
                {"id": workflow_id, "hash": token_hash},
            )

        await self.db.write(change)

    async def webhook_token_hash(self, workflow_id: str) -> str | None:
        """The hash of the workflow's webhook token; None when it has none (or no such
        workflow)."""

        def query(conn: Connection) -> str | None:
            row = conn.execute(
                "SELECT webhook_token_hash FROM workflows WHERE id = :id", {"id": workflow_id}
            ).fetchone()
            return None if row is None else row["webhook_token_hash"]

        return await self.db.read(query)

    async def count_webhook_call(
        self, workflow_id: str, limit: int, window_s: float, now: float
    ) -> float | None:
        """Count a call of the workflow's webhook at `now` (seconds since the epoch) if fewer
        than `limit` were counted in the `window_s` before; else count nothing and return the
        seconds until one leaves the window. One transaction: every process counts alike."""

        def count(conn: Connection) -> float | None:
            conn.execute(
                "DELETE FROM webhook_calls WHERE workflow_id = :id AND at <= :cutoff",
                {"id": workflow_id, "cutoff": now - window_s},
            )
            calls, oldest = conn.execute(
                "SELECT count(*), min(at) FROM webhook_calls WHERE workflow_id = :id",
                {"id": workflow_id},
            ).fetchone()
            if calls >= limit:
                return float(oldest + window_s - now)
            conn.execute(
                "INSERT INTO webhook_calls (workflow_id, at) VALUES (:id, :now)",
                {"id": workflow_id, "now": now},
            )
            return None

        return await self.db.write(count)

    async def delete(self, workflow_id: str) -> None:
        await self.db.write(
            lambda conn: conn.execute("DELETE FROM workflows WHERE id = :id", {"id": workflow_id})
        )


def row_with_role(conn: Connection, workflow_id: str, user_id: str) -> Any:
    """The workflow's row, and the role of `user_id` in its workspace as `caller_role`."""
    return conn.execute(
        "SELECT workflows.*, memberships.role AS caller_role FROM workflows"
        " LEFT JOIN memberships ON memberships.workspace_id = workflows.workspace_id"
        " AND memberships.user_id = :user WHERE workflows.id = :id",
        {"id": workflow_id, "user": user_id},
    ).fetchone()
