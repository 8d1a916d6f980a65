"""Retention: ended executions older than `FLOWTRUX_RETENTION_DAYS` go, with their events and
logs, and so do expired sessions.

Pruning runs in the background, at start and then every `PRUNE_EVERY_S`, in small transactions
(`BATCH` rows each) with a pause between them, so the journal's commits, which share SQLite's
one writer, never wait long behind it. Several processes on one store may prune at once: a row
is deleted once, whoever deletes it.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import trio

from flowtrux.errors import StoreUnavailable
from flowtrux.store.store import Store
from flowtrux.timestamps import utc_now

logger = logging.getLogger(__name__)

BATCH = 100
PAUSE_S = 0.05  # between two transactions: the journal's turn
PRUNE_EVERY_S = 3600.0


async def keep_pruning(
    store: Store,
    retention_days: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    while True:
        try:
            await prune(store, retention_days)
        except StoreUnavailable as exc:
            logger.warning("could not prune old executions: %s", exc.cause)
        except Exception:  # pruning is housekeeping: it never takes the server down
            logger.exception("could not prune old executions")
        await trio.sleep(PRUNE_EVERY_S)


async def prune(store: Store, retention_days: float) -> tuple[int, int]:
    """Prune now; how many executions and sessions went."""
    now = utc_now()
    executions = await _in_batches(
        lambda: store.executions.prune_ended_before(now - timedelta(days=retention_days), BATCH)
    )
    sessions = await _in_batches(lambda: store.sessions.prune_expired(now, BATCH))
    if executions or sessions:
        logger.info(
            "pruned %d executions ended before %s and %d expired sessions",
            executions,
            _day(now - timedelta(days=retention_days)),
            sessions,
        )
    return executions, sessions


async def _in_batches(prune_batch: Callable[[], Awaitable[int]]) -> int:
    total = 0
    while (deleted := await prune_batch()) > 0:
        total += deleted
        await trio.sleep(PAUSE_S)
    return total


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
