"""Migrations applied at start-up, once; readiness; which database URLs are accepted."""

import sqlite3
from pathlib import Path

import pytest

from flowtrux.store.migrations import apply_migrations, migrations_dir, schema_is_current
from flowtrux.store.sqlite import open_sqlite
from flowtrux.store.store import Store, UnsupportedDatabase, open_store, sqlite_path

TABLES = {
    "users",
    "sessions",
    "workspaces",
    "memberships",
    "workflows",
    "executions",
    "execution_events",
    "node_logs",
    "processes",
}


def all_migrations() -> list[str]:
    return sorted(
        path.name.removesuffix(".sql")
        for path in migrations_dir().glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


def current(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return schema_is_current(conn)
    finally:
        conn.close()


def tables_of(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def test_applying_twice_applies_nothing_the_second_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert "0001_init" in all_migrations()
    assert not current(tmp_path / "m.db")

    assert apply_migrations(url) == all_migrations()
    assert apply_migrations(url) == []
    assert current(tmp_path / "m.db")
    assert tables_of(tmp_path / "m.db") >= TABLES


async def test_open_store_creates_the_schema_on_a_fresh_path(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "nested" / "store.db"  # the folders do not exist yet
    async with open_store(f"sqlite:///{path}") as store:
        assert await store.ready()
        assert tables_of(path) >= TABLES


async def test_opening_an_existing_store_again_keeps_its_data(store_url: str) -> None:
    async with open_store(store_url) as store:
        user = await store.users.create("ada@example.com", "Ada", "h")
    async with open_store(store_url) as store:
        assert await store.ready()
        found = await store.users.find_by_email("ada@example.com")
    assert found == (user, "h")


async def test_ready_is_true_on_a_migrated_database(store: Store) -> None:
    assert await store.ready() is True


async def test_ready_is_false_when_migrations_are_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/unmigrated.db"
    async with open_sqlite(tmp_path / "unmigrated.db") as db:
        assert await Store(url, db).ready() is False


@pytest.mark.parametrize(
    "url",
    [
        "postgres://x",
        "postgresql://user:pw@localhost/flowtrux",
        "mysql://",
        "sqlite:///",
        "sqlite://relative.db",
        "/tmp/plain/path.db",
        "",
    ],
)
async def test_an_unsupported_url_says_what_to_use(url: str) -> None:
    with pytest.raises(UnsupportedDatabase, match=r"use sqlite:///path/to/file\.db") as raised:
        async with open_store(url):
            pass  # pragma: no cover
    assert repr(url) in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/flowtrux.db", Path("data/flowtrux.db")),
        ("sqlite:////var/lib/flowtrux.db", Path("/var/lib/flowtrux.db")),
    ],
)
def test_sqlite_urls_map_to_relative_and_absolute_paths(url: str, path: Path) -> None:
    assert sqlite_path(url) == path
