"""Server-side sessions. The cookie carries a random token; the table keeps only its SHA-256."""

import hashlib
import secrets
from datetime import datetime, timedelta

import attrs

from flowtrux.store.database import Connection, Database, delete_some
from flowtrux.store.users import User
from flowtrux.timestamps import to_iso, utc_now

SESSION_LIFETIME = timedelta(days=14)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@attrs.frozen
class SessionStore:
    db: Database

    async def create(self, user_id: str) -> str:
        """Start a session for `user_id` and return its token (the cookie's value)."""
        token = secrets.token_urlsafe(32)
        now = utc_now()

        def insert(conn: Connection) -> None:
            conn.execute(
                "DELETE FROM sessions WHERE user_id = :user AND expires_at <= :now",
                {"user": user_id, "now": to_iso(now)},
            )
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
                " VALUES (:hash, :user, :now, :expires)",
                {
                    "hash": _hash(token),
                    "user": user_id,
                    "now": to_iso(now),
                    "expires": to_iso(now + SESSION_LIFETIME),
                },
            )

        await self.db.write(insert)
        return token

    async def user_of(self, token: str) -> User | None:
        """The user whose live session has this token, if any."""
        return await self.db.read(lambda conn: user_of(conn, token))

    async def prune_expired(self, now: datetime, batch: int) -> int:
        """Delete at most `batch` sessions expired by `now`; how many were deleted."""

        params = {"now": to_iso(now), "batch": batch}
        return await self.db.write(
            lambda conn: delete_some(conn, "sessions", "token_hash", "expires_at < :now", params)
        )

    async def delete(self, token: str) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "DELETE FROM sessions WHERE token_hash = :hash", {"hash": _hash(token)}
            )
        )


def user_of(conn: Connection, token: str) -> User | None:
    """`SessionStore.user_of`, on a connection."""
    row = conn.execute(
        "SELECT users.* FROM sessions JOIN users ON users.id = sessions.user_id"
        " WHERE sessions.token_hash = :hash AND sessions.expires_at > :now",
        {"hash": _hash(token), "now": to_iso(utc_now())},
    ).fetchone()
    return None if row is None else User.from_row(row)
