"""This process's lease, and the end of runs whose process stopped without ending them."""

import logging
from datetime import timedelta

import trio

from flowtrux.errors import StoreUnavailable
from flowtrux.runs.journal import Journal
from flowtrux.runs.outcome import Outcome
from flowtrux.store.processes import ProcessStore
from flowtrux.timestamps import utc_now

logger = logging.getLogger(__name__)


async def keep_lease(
    processes: ProcessStore,
    journal: Journal,
    process_id: str,
    lease_s: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Renew the lease every third of its length and end the runs of lapsed processes."""
    await _renew_and_recover(processes, journal, process_id, lease_s)
    task_status.started()
    while True:
        await trio.sleep(lease_s / 3)
        try:
            await _renew_and_recover(processes, journal, process_id, lease_s)
        except StoreUnavailable as exc:
            logger.warning("could not renew the process lease: %s", exc.cause)
        except Exception:
            logger.exception("could not renew the process lease")


async def _renew_and_recover(
    processes: ProcessStore, journal: Journal, process_id: str, lease_s: float
) -> None:
    await processes.renew(process_id)
    now = utc_now()
    for orphan in await processes.orphaned_runs(now - timedelta(seconds=lease_s)):
        elapsed_ms = round((now - orphan.started_at).total_seconds() * 1000)
        recorder = journal.recorder(orphan.execution_id, orphan.last_seq)
        await recorder.finish(Outcome.interrupted(), elapsed_ms)
        logger.warning("execution %s was left RUNNING by a stopped process", orphan.execution_id)
