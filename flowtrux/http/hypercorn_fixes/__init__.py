"""Corrections to hypercorn 0.18 (trio worker), applied when FlowTrux serves.

Each lives in the module of what it corrects and is applied only on hypercorn 0.18.x and only
while upstream still has the bug (`Fix.upstream_has_bug`), each with a test that fails without it:

- `flow_control`: HTTP/2 back-pressure for a client that stops reading;
- `h2_streams`: HTTP/2 streams, which are opened or refused, and how a connection retires;
- `app_inbox`: what the app receives, the request body and the client's disconnect;
- `h11_reading`: HTTP/1.1 reading, a close seen behind a pipelined request, `100 Continue`;
- `h11_answers`: an HTTP/1.1 answer after which the connection closes says so;
- `connections`: every connection reclaimed, none past a cap, none holding up the shutdown.
"""

from __future__ import annotations

import importlib.metadata
import logging

from flowtrux.http.hypercorn_fixes import (
    app_inbox,
    connections,
    flow_control,
    h2_streams,
    h11_answers,
    h11_reading,
)
from flowtrux.http.hypercorn_fixes.fix import Fix

logger = logging.getLogger(__name__)

FIXES: tuple[Fix, ...] = (
    *flow_control.FIXES,
    *h2_streams.FIXES,
    *app_inbox.FIXES,
    *h11_reading.FIXES,
    *h11_answers.FIXES,
    *connections.FIXES,
)


def is_applied() -> bool:
    """Whether every correction is in place."""
    return all(fix.applied for fix in FIXES)


def apply() -> None:
    """Apply the corrections that are still needed; idempotent."""
    version = importlib.metadata.version("hypercorn")
    for fix in FIXES:
        if fix.applied:
            continue
        if version.split(".")[:2] != ["0", "18"]:
            logger.warning("hypercorn %s is not 0.18.x; not correcting %s", version, fix.where)
        elif not fix.upstream_has_bug():
            logger.warning("upstream %s changed; not correcting it", fix.where)
        else:
            setattr(fix.owner, fix.name, fix.corrected)
