"""The store as the rest of the service sees it: one object per concept over one database."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from flowtrux.access import Role
from flowtrux.store.database import Connection, Database
from flowtrux.store.executions import ExecutionStore
from flowtrux.store.migrations import apply_migrations, schema_is_current
from flowtrux.store.processes import ProcessStore
from flowtrux.store.sessions import SessionStore, user_of
from flowtrux.store.sqlite import LOCK_WAIT_S, open_sqlite
from flowtrux.store.users import User, UserStore
from flowtrux.store.workflows import Documents, Workflow, WorkflowStore, row_with_role
from flowtrux.store.workspaces import WorkspaceStore


class UnsupportedDatabase(ValueError):
    pass


@attrs.frozen
class Store:
    url: str
    db: Database
    workflow_documents: Documents = attrs.field(factory=Documents)

    @property
    def users(self) -> UserStore:
        return UserStore(self.db)

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self.db)

    @property
    def workspaces(self) -> WorkspaceStore:
        return WorkspaceStore(self.db)

    @property
    def workflows(self) -> WorkflowStore:
        return WorkflowStore(self.db, self.workflow_documents)

    @property
    def executions(self) -> ExecutionStore:
        return ExecutionStore(self.db)

    @property
    def processes(self) -> ProcessStore:
        return ProcessStore(self.db)

    async def caller_and_workflow(
        self, token: str, workflow_id: str
    ) -> tuple[User | None, tuple[Workflow, Role | None] | None]:
        """The user of the live session `token` (None: no such session) and, for that user,
        the workflow with the user's role in its workspace (`workflows.with_role`): in one
        read, as a request that names a workflow needs them."""

        def read(conn: Connection) -> tuple[User | None, Any]:
            user = user_of(conn, token)
            return user, None if user is None else row_with_role(conn, workflow_id, user.id)

        user, row = await self.db.read(read)
        return user, self.workflows.with_role(row)

    async def ready(self) -> bool:
        """True when the database answers, on a connection already open, and every migration
        is applied."""
        return await self.db.read(schema_is_current)


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` -> the file's path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise UnsupportedDatabase(
            f"unsupported database URL {url!r}: use sqlite:///path/to/file.db"
        )
    return Path(url.removeprefix(prefix))


@asynccontextmanager
async def open_store(url: str, *, lock_wait_s: float = LOCK_WAIT_S) -> AsyncIterator[Store]:
    """Apply pending migrations, then open the database at `url`. A call that finds it locked
    by another connection waits up to `lock_wait_s`, then raises StoreUnavailable."""
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    await trio.to_thread.run_sync(apply_migrations, url)
    async with open_sqlite(path, lock_wait_s=lock_wait_s) as db:
        yield Store(url, db)
