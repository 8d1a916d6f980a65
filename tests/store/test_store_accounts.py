"""Users, sessions, workspaces and memberships."""

import hashlib
import sqlite3
from datetime import timedelta

import pytest

from flowtrux.access import Role
from flowtrux.store.store import Store
from flowtrux.store.users import User
from flowtrux.store.workspaces import Membership, Workspace
from flowtrux.timestamps import from_iso, to_iso, utc_now

# Users


async def test_a_created_user_is_found_by_email_with_its_password_hash(store: Store) -> None:
    user = await store.users.create("grace@example.com", "Grace", "argon2-hash")

    assert user.id.startswith("usr-")
    assert await store.users.find_by_email("grace@example.com") == (user, "argon2-hash")
    assert await store.users.find_by_email("nobody@example.com") is None


@pytest.mark.parametrize("lookup", ["ADA@EXAMPLE.COM", "Ada@Example.com", "ada@example.com"])
async def test_emails_are_case_insensitive_on_lookup(store: Store, lookup: str) -> None:
    user = await store.users.create("Ada@Example.COM", "Ada", "h")

    assert user.email == "ada@example.com"
    assert await store.users.find_by_email(lookup) == (user, "h")


async def test_a_duplicate_email_is_rejected_whatever_its_case(store: Store, user: User) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await store.users.create("ADA@example.com", "Another Ada", "other-hash")

    assert await store.users.find_by_email("ada@example.com") == (user, "hash-of-ada")


async def test_set_password_replaces_the_hash(store: Store, user: User) -> None:
    await store.users.set_password(user.id, "new-hash")

    assert await store.users.find_by_email(user.email) == (user, "new-hash")


# Sessions


async def test_a_session_token_resolves_to_its_user(store: Store, user: User) -> None:
    other = await store.users.create("bob@example.com", "Bob", "h")
    token = await store.sessions.create(user.id)
    other_token = await store.sessions.create(other.id)

    assert token != other_token
    assert await store.sessions.user_of(token) == user
    assert await store.sessions.user_of(other_token) == other
    assert await store.sessions.user_of("not-a-token") is None


async def test_a_deleted_session_no_longer_resolves(store: Store, user: User) -> None:
    token = await store.sessions.create(user.id)
    kept = await store.sessions.create(user.id)

    await store.sessions.delete(token)

    assert await store.sessions.user_of(token) is None
    assert await store.sessions.user_of(kept) == user


async def test_an_expired_session_no_longer_resolves(store: Store, user: User) -> None:
    token = await store.sessions.create(user.id)
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    past = to_iso(utc_now() - timedelta(seconds=1))

    await store.db.write(
        lambda conn: conn.execute(
            "UPDATE sessions SET expires_at = ? WHERE token_hash = ?", (past, token_hash)
        )
    )

    assert await store.sessions.user_of(token) is None


async def test_new_sessions_last_about_two_weeks(store: Store, user: User) -> None:
    before = utc_now()
    await store.sessions.create(user.id)
    row = await store.db.read(
        lambda conn: conn.execute("SELECT created_at, expires_at FROM sessions").fetchone()
    )

    assert to_iso(before) <= row["created_at"]
    assert row["expires_at"] == to_iso(from_iso(row["created_at"]) + timedelta(days=14))


async def test_the_table_keeps_only_a_hash_of_the_token(store: Store, user: User) -> None:
    token = await store.sessions.create(user.id)
    rows = await store.db.read(lambda conn: conn.execute("SELECT * FROM sessions").fetchall())

    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(value) for value in tuple(rows[0]))
    assert token not in stored


async def test_deleting_a_user_ends_their_sessions(store: Store, user: User) -> None:
    token = await store.sessions.create(user.id)

    await store.db.write(lambda conn: conn.execute("DELETE FROM users WHERE id = ?", (user.id,)))

    assert await store.sessions.user_of(token) is None


# Workspaces and memberships


async def test_ensure_is_idempotent_by_name(store: Store) -> None:
    first = await store.workspaces.ensure("Ops")
    again = await store.workspaces.ensure("Ops")
    other = await store.workspaces.ensure("Sales")

    assert first == again
    assert first.id.startswith("ws-")
    assert other.id != first.id
    count = await store.db.read(
        lambda conn: conn.execute("SELECT count(*) FROM workspaces").fetchone()[0]
    )
    assert count == 2


async def test_set_role_upserts_and_memberships_lists_workspaces_with_roles(
    store: Store, user: User
) -> None:
    ops = await store.workspaces.ensure("Ops")
    analytics = await store.workspaces.ensure("Analytics")
    await store.workspaces.ensure("Unrelated")

    await store.workspaces.set_role(ops.id, user.id, Role.VIEWER)
    await store.workspaces.set_role(analytics.id, user.id, Role.EDITOR)
    assert await store.workspaces.role_of(user.id, ops.id) is Role.VIEWER

    await store.workspaces.set_role(ops.id, user.id, Role.OWNER)  # a change, not a second row

    assert await store.workspaces.role_of(user.id, ops.id) is Role.OWNER
    assert await store.workspaces.memberships(user.id) == [
        Membership(Workspace(analytics.id, "Analytics"), Role.EDITOR),
        Membership(Workspace(ops.id, "Ops"), Role.OWNER),
    ]


async def test_role_of_is_none_for_non_members(
    store: Store, user: User, workspace: Workspace
) -> None:
    stranger = await store.users.create("eve@example.com", "Eve", "h")
    elsewhere = await store.workspaces.ensure("Elsewhere")

    assert await store.workspaces.role_of(user.id, workspace.id) is Role.OWNER
    assert await store.workspaces.role_of(stranger.id, workspace.id) is None
    assert await store.workspaces.role_of(user.id, elsewhere.id) is None
    assert await store.workspaces.memberships(stranger.id) == []


async def test_members_of_one_workspace_have_their_own_roles(
    store: Store, user: User, workspace: Workspace
) -> None:
    bob = await store.users.create("bob@example.com", "Bob", "h")
    await store.workspaces.set_role(workspace.id, bob.id, Role.OPERATOR)

    assert await store.workspaces.role_of(bob.id, workspace.id) is Role.OPERATOR
    assert await store.workspaces.role_of(user.id, workspace.id) is Role.OWNER
