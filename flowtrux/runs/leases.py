"""This process's lease, the end of runs whose process stopped without ending them, and the
Stop requests other processes left for this one's runs.

The requests are read from the store every `STOP_POLL_S` while this process has runs (an
indexed read of its RUNNING executions): a Stop sent to another process reaches the run within
about that. A store with notifications (PostgreSQL's LISTEN/NOTIFY) can wake the same loop
instead of the timer.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import trio

from flowtrux.errors import StoreUnavailable
from flowtrux.runs import payloads
from flowtrux.runs.outcome import Outcome
from flowtrux.store.executions import Finish, NewEvent
from flowtrux.store.processes import OrphanedRun, ProcessStore
from flowtrux.timestamps import utc_now

logger = logging.getLogger(__name__)

StopRun = Callable[[str, datetime], Awaitable[object]]  # (execution id, when it was asked)
STOP_POLL_S = 0.1


async def keep_lease(
    processes: ProcessStore,
    process_id: str,
    lease_s: float,
    interrupted: Callable[[str], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Renew the lease every third of it, and look for the runs of lapsed processes every tenth
    (and end them): a process that dies has its runs ended within 1.1 leases."""
    await processes.renew(process_id)
    await _recover(processes, lease_s, interrupted)
    task_status.started()
    renewed_at = trio.current_time()
    while True:
        await trio.sleep(lease_s / 10)
        try:
            if trio.current_time() - renewed_at >= lease_s / 3:
                await processes.renew(process_id)
                renewed_at = trio.current_time()
            await _recover(processes, lease_s, interrupted)
        except StoreUnavailable as exc:
            logger.warning("could not renew the process lease: %s", exc.cause)
        except Exception:
            logger.exception("could not renew the process lease")


async def follow_stop_requests(
    processes: ProcessStore,
    process_id: str,
    wait_for_runs: Callable[[], Awaitable[None]],
    stop: StopRun,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`stop` each run of this process that another process was asked to stop, within about
    `STOP_POLL_S` of the request; idle while the process has no run."""
    task_status.started()
    while True:
        await wait_for_runs()
        await trio.sleep(STOP_POLL_S)
        try:
            requested = await processes.stops_requested(process_id)
        except StoreUnavailable:
            continue  # the journal reports the outage; the next look will do
        for execution_id, asked_at in requested:
            logger.info("stopping execution %s, as asked through another process", execution_id)
            await stop(execution_id, asked_at)


async def end_if_orphaned(
    processes: ProcessStore, execution_id: str, lease_s: float, *, abandoned_by: str | None = None
) -> bool:
    """End `execution_id` INTERRUPTED, with its `error` event, if it is RUNNING and its process's
    lease lapsed (or its process is `abandoned_by`, which knows it does not run it). False, and
    nothing written, for any other run: one ended meanwhile, by whoever, is never ended again."""
    ended = await processes.end_orphan(
        execution_id, _lapsed_before(lease_s), _interrupted, abandoned_by=abandoned_by
    )
    if ended:
        logger.warning("execution %s was left RUNNING by a stopped process", execution_id)
    return ended


async def _recover(
    processes: ProcessStore, lease_s: float, interrupted: Callable[[str], None]
) -> None:
    """End the runs of lapsed processes; `interrupted` is told of each ended here."""
    for execution_id in await processes.orphaned_runs(_lapsed_before(lease_s)):
        if await end_if_orphaned(processes, execution_id, lease_s):
            interrupted(execution_id)


def _lapsed_before(lease_s: float) -> datetime:
    return utc_now() - timedelta(seconds=lease_s)


def _interrupted(orphan: OrphanedRun) -> tuple[NewEvent, Finish]:
    now = utc_now()
    elapsed_ms = round((now - orphan.started_at).total_seconds() * 1000)
    outcome = Outcome.interrupted()
    payload = payloads.terminal_payload(orphan.execution_id, outcome, elapsed_ms)
    return (
        NewEvent(orphan.execution_id, orphan.last_seq + 1, outcome.event_name, payload),
        Finish(orphan.execution_id, outcome.status, None, outcome.error, now, elapsed_ms),
    )
