"""Webhook tokens: 32 random bytes, shown once; only their SHA-256 is stored (a token this random
needs no slow hash), and a presented token is compared in constant time, with the same work
whether the workflow has a token or not."""

import hashlib
import hmac
import secrets

PREFIX = "ftw_"
_NO_TOKEN = hashlib.sha256(b"no token").hexdigest()  # compared against when there is none


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def matches(presented: str | None, stored_hash: str | None) -> bool:
    """Whether `presented` is the token whose hash is `stored_hash` (None: no token made)."""
    same = hmac.compare_digest(token_hash(presented or ""), stored_hash or _NO_TOKEN)
    return same and presented is not None and stored_hash is not None
