"""Shared fixtures of the store tests: real SQLite files in `tmp_path`, never mocks."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowtrux.access import Role
from flowtrux.store.store import Store, open_store
from flowtrux.store.users import User
from flowtrux.store.workspaces import Workspace


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as store:
        yield store


@pytest.fixture
async def user(store: Store) -> User:
    return await store.users.create("ada@example.com", "Ada", "hash-of-ada")


@pytest.fixture
async def workspace(store: Store, user: User) -> Workspace:
    """A workspace that `user` owns."""
    workspace = await store.workspaces.ensure("Main")
    await store.workspaces.set_role(workspace.id, user.id, Role.OWNER)
    return workspace
