"""Schema migrations: the plain SQL files of `migrations/`, applied once, under a lock."""

import functools
import sqlite3
from pathlib import Path

import yoyo
import yoyo.migrations

import flowtrux

PACKAGE_DIR = Path(flowtrux.__file__).parent


def migrations_dir() -> Path:
    """`migrations/` beside the package in a checkout, inside it in a built wheel."""
    for candidate in (PACKAGE_DIR.parent / "migrations", PACKAGE_DIR / "migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no migrations folder next to or inside {PACKAGE_DIR}")


def apply_migrations(database_url: str) -> list[str]:
    """Apply the migrations not yet applied; return their ids. Blocking: call from a thread."""
    backend = yoyo.get_backend(database_url)
    migrations = yoyo.read_migrations(str(migrations_dir()))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [migration.id for migration in pending]


@functools.cache
def _migration_hashes() -> frozenset[str]:
    """What yoyo records for each migration of `migrations/` once applied (read once)."""
    return frozenset(migration.hash for migration in yoyo.read_migrations(str(migrations_dir())))


def schema_is_current(conn: sqlite3.Connection) -> bool:
    """Whether every migration is applied, asked on a connection already open (yoyo's own
    check opens one, which fails when the process is out of file descriptors)."""
    table = yoyo.migrations.default_migration_table
    found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    if conn.execute(found, (table,)).fetchone() is None:
        return False
    applied = {row[0] for row in conn.execute(f"SELECT migration_hash FROM {table}")}
    return _migration_hashes() <= applied
