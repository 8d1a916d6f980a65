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

    asked = utc_now()
    assert await manager.stop("exec-there") is Stopping.CANCELLING
    assert await store.executions.status("exec-there") is RunStatus.RUNNING  # not ended here
    [(execution_id, asked_at)] = await store.processes.stops_requested("proc-other")
    assert execution_id == "exec-there"
    assert abs((asked_at - asked).total_seconds()) < 1  # its Stop latency counts from then


async def test_processes_racing_to_end_the_same_orphans_end_each_once(
    save_workflow: SaveWorkflow, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Four processes share a store when a fifth stops renewing its lease: two look for its
    orphans every 0.1 s while the Stop buttons of the other two end the same runs. Each run gets
    one terminal event, and no error is logged."""
    orphans = [f"exec-{n}" for n in range(20)]
    for execution_id in orphans:
        await new_execution(store, save_workflow, execution_id, process_id="proc-gone")
    opened, lapsed, gone = trio.Semaphore(0), trio.Event(), trio.Event()
    stopped: list[Stopping] = []

    async def keep_gone_alive() -> None:  # until every process is open
        while not lapsed.is_set():
            await store.processes.renew("proc-gone")
            await trio.sleep(0.05)

    async def process(own: Store, stops: list[str]) -> None:
        async with open_run_manager(own, RunSettings(lease_s=0.3)) as manager:
            opened.release()
            await gone.wait()  # pressed once the lease has lapsed: racing the orphan finders
            for execution_id in stops:
                stopped.append(await manager.stop(execution_id))
                await trio.sleep(0.01)  # meanwhile the others look for orphans

    async with AsyncExitStack() as stores:  # opened one by one: each applies the migrations
        processes = [await stores.enter_async_context(open_store(store.url)) for _ in range(4)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_gone_alive)
            for own, stops in zip(processes, ([], orphans, [], orphans[::-1]), strict=True):
                nursery.start_soon(process, own, stops)
            for _ in processes:
                await opened.acquire()
            lapsed.set()
            await lapsed_lease(store, "proc-gone")
            gone.set()

    assert Stopping.INTERRUPTED in stopped  # a Stop button ended some, in the race
    for execution_id in orphans:
        assert await terminal_events(store, execution_id) == ["error"], execution_id
        assert await store.executions.status(execution_id) is RunStatus.INTERRUPTED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
