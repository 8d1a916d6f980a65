"""Schema migrations: the plain SQL files of `migrations/`, applied once, under a lock."""

from pathlib import Path

import yoyo

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


def pending_migrations(database_url: str) -> list[str]:
    """Ids of the migrations not applied yet (empty when the schema is current). Blocking."""
    backend = yoyo.get_backend(database_url)
    return [
        migration.id for migration in backend.to_apply(yoyo.read_migrations(str(migrations_dir())))
    ]
