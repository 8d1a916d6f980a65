"""Blocking calls in worker threads that stop when their Trio scope is cancelled.

`trio.to_thread.run_sync` either ignores cancellation or abandons the thread, which would leave a
database connection busy with a query nobody waits for. Here cancellation *interrupts* the call
(`sqlite3.Connection.interrupt`, `psycopg.Connection.cancel_safe`) and waits for the thread to
give the connection back.
"""

from collections.abc import Callable
from typing import NoReturn, TypeVar

import outcome
import trio

T = TypeVar("T")


async def run_interruptible(fn: Callable[[], T], interrupt: Callable[[], object]) -> T:
    """Call `fn()` in a worker thread and return its result.

    If the calling scope is cancelled meanwhile, `interrupt()` is called from the Trio thread and
    the task waits for `fn` to return: if `fn` then raised, Cancelled is raised instead; if it
    finished anyway, its result is returned and the cancellation is delivered at the next
    checkpoint. Checkpoints.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    raise_cancel: Callable[[], NoReturn] | None = None

    def abort(raise_cancel_fn: Callable[[], NoReturn]) -> trio.lowlevel.Abort:
        nonlocal raise_cancel
        raise_cancel = raise_cancel_fn
        interrupt()
        return trio.lowlevel.Abort.FAILED  # we reschedule ourselves once the thread is done

    def resume(result: outcome.Outcome[T]) -> None:
        if raise_cancel is not None and isinstance(result, outcome.Error):
            result = outcome.capture(raise_cancel)
        trio.lowlevel.reschedule(task, result)

    def deliver(result: outcome.Outcome[T]) -> None:  # runs in the worker thread
        token.run_sync_soon(resume, result)

    trio.lowlevel.start_thread_soon(fn, deliver, name="flowtrux-store")
    result: T = await trio.lowlevel.wait_task_rescheduled(abort)
    return result
