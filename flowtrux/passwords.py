"""Password hashing with argon2, off the Trio thread (a hash costs tens of milliseconds)."""

import functools

import argon2
import trio

_hasher = argon2.PasswordHasher()


@functools.cache
def _decoy_hash() -> str:
    return _hasher.hash("flowtrux decoy password")


async def hash_password(password: str) -> str:
    return await trio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches. With no hash (unknown user) a decoy is checked, so that both
    failures take as long and cannot be told apart."""

    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _decoy_hash(), password) and bool(password_hash)
        except argon2.exceptions.VerificationError:
            return False

    return await trio.to_thread.run_sync(verify)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
