"""Runs left RUNNING by a process that stopped are found and ended INTERRUPTED, once; the Stop
button reaches runs of other processes."""

import json
import logging
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest
import trio

from flowtrux.engine.states import RunStatus
from flowtrux.runs.manager import RunManager, RunSettings, Stopping, open_run_manager
from flowtrux.runs.outcome import INTERRUPTED
from flowtrux.store.executions import NewEvent
from flowtrux.store.store import Store, open_store
from flowtrux.timestamps import to_iso, utc_now
from tests.runs.conftest import SaveWorkflow, new_execution
from tests.stored import stored_execution


async def test_runs_of_a_stopped_process_end_interrupted(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await store.processes.renew("proc-alive")
    await new_execution(store, save_workflow, "exec-orphan", process_id="proc-gone")
    await new_execution(store, save_workflow, "exec-alive", process_id="proc-alive")
    await store.executions.append([NewEvent("exec-orphan", 1, "start", {})])

    async with open_run_manager(store, RunSettings()):
        pass  # the lease is taken, and orphans recovered, on the way in

    orphan = await stored_execution(store, "exec-orphan")
    assert orphan is not None
    assert orphan.summary.status is RunStatus.INTERRUPTED
    assert orphan.summary.error == INTERRUPTED
    events = (await store.executions.events_after("exec-orphan", 0)).events
    assert [(event.seq, event.name) for event in events] == [(1, "start"), (2, "error")]
    assert json.loads(events[-1].data)["error"] == INTERRUPTED
    alive = await stored_execution(store, "exec-alive")
    assert alive is not None
    assert alive.summary.status is RunStatus.RUNNING  # its process still holds its lease


async def lapsed_lease(store: Store, process_id: str) -> None:
    """`process_id` took a lease five minutes ago and never renewed it."""
    await store.processes.renew(process_id)
    old = to_iso(utc_now() - timedelta(minutes=5))
    await store.db.write(
        lambda conn: conn.execute(
            "UPDATE processes SET heartbeat_at = ? WHERE id = ?", (old, process_id)
        )
    )


async def terminal_events(store: Store, execution_id: str) -> list[str]:
    events = (await store.executions.events_after(execution_id, 0)).events
    return [event.name for event in events if event.terminal]


async def test_stop_ends_a_run_of_a_lapsed_process_interrupted_at_once(
    store: Store, save_workflow: SaveWorkflow, manager: RunManager
) -> None:
    await lapsed_lease(store, "proc-gone")  # after this process's first look for orphans
    await new_execution(store, save_workflow, "exec-orphan", process_id="proc-gone")

    assert await manager.stop("exec-orphan") is Stopping.INTERRUPTED
    assert await store.executions.status("exec-orphan") is RunStatus.INTERRUPTED
    assert await terminal_events(store, "exec-orphan") == ["error"]
    assert await manager.stop("exec-orphan") is Stopping.ENDED
    assert await terminal_events(store, "exec-orphan") == ["error"]


async def test_stop_of_a_run_of_a_live_process_asks_that_process(
    store: Store, save_workflow: SaveWorkflow, manager: RunManager
) -> None:
    await store.processes.renew("proc-other")
    await new_execution(store, save_workflow, "exec-there", process_id="proc-other")

    assert await manager.stop("exec-there") is Stopping.CANCELLING
    assert await store.executions.status("exec-there") is RunStatus.RUNNING  # not ended here
    assert await store.processes.stops_requested("proc-other") == ["exec-there"]


async def test_processes_racing_to_end_the_same_orphans_end_each_once(
    save_workflow: SaveWorkflow, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes start on one store, each ending the orphans at start while the other's
    Stop button ends the same runs: each run gets one terminal event, and no error is logged."""
    orphans = [f"exec-{n}" for n in range(20)]
    for execution_id in orphans:
        await new_execution(store, save_workflow, execution_id, process_id="proc-gone")

    async def process(own: Store, stops: bool) -> None:
        async with open_run_manager(own, RunSettings()) as manager:
            if stops:
                for execution_id in orphans:
                    await manager.stop(execution_id)

    async with AsyncExitStack() as stores:  # opened one by one: each applies the migrations
        processes = [await stores.enter_async_context(open_store(store.url)) for _ in range(4)]
        async with trio.open_nursery() as nursery:
            for own, stops in zip(processes, (False, True, False, True), strict=True):
                nursery.start_soon(process, own, stops)

    for execution_id in orphans:
        assert await terminal_events(store, execution_id) == ["error"], execution_id
        assert await store.executions.status(execution_id) is RunStatus.INTERRUPTED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
