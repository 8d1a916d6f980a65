"""Ids are prefixed random strings: `usr-…`, `ws-…`, `wf-…`, `exec-…`."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"
