"""Users and their password hashes."""

from __future__ import annotations

from typing import Any

import attrs

from flowtrux.ids import new_id
from flowtrux.store.database import Connection, Database
from flowtrux.timestamps import to_iso, utc_now


@attrs.frozen
class User:
    id: str
    email: str
    name: str

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(row["id"], row["email"], row["name"])


@attrs.frozen
class UserStore:
    db: Database

    async def create(self, email: str, name: str, password_hash: str) -> User:
        user = User(new_id("usr"), email.lower(), name)

        def insert(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO users (id, email, name, password_hash, created_at)"
                " VALUES (:id, :email, :name, :hash, :now)",
                {**attrs.asdict(user), "hash": password_hash, "now": to_iso(utc_now())},
            )

        await self.db.write(insert)
        return user

    async def set_password(self, user_id: str, password_hash: str) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                "UPDATE users SET password_hash = :hash WHERE id = :id",
                {"hash": password_hash, "id": user_id},
            )
        )

    async def find_by_email(self, email: str) -> tuple[User, str] | None:
        """The user with this email and their password hash, if there is one."""
        row = await self.db.read(
            lambda conn: conn.execute(
                "SELECT * FROM users WHERE email = :email", {"email": email.lower()}
            ).fetchone()
        )
        return None if row is None else (User.from_row(row), row["password_hash"])
