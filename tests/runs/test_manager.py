"""The run manager against a real SQLite store: outcomes, detaching, shutdown, fan-out."""

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from flowtrux.engine.states import RunStatus
from flowtrux.errors import ShuttingDown, TooManyRequests
from flowtrux.runs.manager import RunManager, RunSettings
from flowtrux.runs.outcome import CANCELLED_BY_SHUTDOWN, CANCELLED_BY_USER
from flowtrux.store.executions import StoredEvent
from flowtrux.store.store import Store
from tests.faults import write_lock_held
from tests.runs.conftest import SaveWorkflow, collect
from tests.stored import stored_execution
from tests.support import chain, delay, fail, transform, trigger


def names(events: list[StoredEvent]) -> list[str]:
    return [event.name for event in events]


def data(event: StoredEvent) -> Any:
    return json.loads(event.data)


async def test_every_event_a_subscriber_sees_is_already_stored(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), transform("a", 1), transform("b", 2)))
    run = await manager.start(workflow, {}, started_by=None)
    feed = manager.subscribe(run.execution_id)
    seen = 0
    with trio.fail_after(10):
        while True:
            try:
                event = await feed.receive()
            except trio.EndOfChannel:
                break
            stored = await store.executions.events_after(run.execution_id, event.seq - 1)
            assert stored.events[0] == event
            seen += 1
    assert seen == 8  # start, node_start and node_complete of 3 nodes, complete


async def test_a_completed_run_sends_one_terminal_event_and_stores_its_status(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), transform("a", "{{trigger.data.x}}")))
    run = await manager.start(workflow, {"x": 7}, started_by=None)
    events = await collect(manager.subscribe(run.execution_id))
    assert names(events) == [
        "start", "node_start", "node_complete", "node_start", "node_complete", "complete",
    ]  # fmt: skip
    assert [event.seq for event in events] == list(range(1, 7))
    assert data(events[-1])["output"] == 7
    execution = await stored_execution(store, run.execution_id)
    assert execution is not None
    assert execution.summary.status is RunStatus.COMPLETED
    assert execution.output == 7
    assert [log["nodeId"] for log in execution.logs] == ["trigger", "a"]


async def test_a_failing_node_fails_the_run_once(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), fail("boom", "no luck"), transform("never", 1)))
    run = await manager.start(workflow, {}, started_by=None)
    events = await collect(manager.subscribe(run.execution_id))
    assert names(events).count("error") == 1
    assert names(events)[-1] == "error"
    assert "no luck" in data(events[-1])["error"]
    execution = await stored_execution(store, run.execution_id)
    assert execution is not None
    assert execution.summary.status is RunStatus.FAILED
    assert [(log["nodeId"], log["status"]) for log in execution.logs] == [
        ("trigger", "success"),
        ("boom", "error"),
        ("never", "skipped"),
    ]


async def test_detach_cancels_the_running_node_and_starts_no_other(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), delay("wait", 10_000), transform("after", 1)))
    run = await manager.start(workflow, {}, started_by=None)
    feed = manager.subscribe(run.execution_id)
    events: list[StoredEvent] = []
    while not events or data(events[-1]).get("nodeId") != "wait":
        events.append(await feed.receive())  # up to node_start of "wait"
    manager.detach(run)
    events += await collect(feed)
    assert names(events)[-2:] == ["node_complete", "cancelled"]
    assert data(events[-2])["status"] == "cancelled"
    assert data(events[-1]) == {
        "success": False,
        "executionId": run.execution_id,
        "error": CANCELLED_BY_USER,
        "cancelled": True,
        "durationMs": data(events[-1])["durationMs"],
    }
    execution = await stored_execution(store, run.execution_id)
    assert execution is not None
    assert execution.summary.status is RunStatus.CANCELLED
    assert [(log["nodeId"], log["status"]) for log in execution.logs] == [
        ("trigger", "success"),
        ("wait", "cancelled"),
        ("after", "skipped"),
    ]


async def test_continue_on_disconnect_keeps_running_in_the_background(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    doc = chain(trigger(continueOnDisconnect=True), delay("wait", 300), transform("after", 1))
    run = await manager.start(await save_workflow(doc), {}, started_by=None)
    feed = manager.subscribe(run.execution_id)
    manager.detach(run)
    events = await collect(feed)
    assert names(events)[-1] == "complete"
    execution = await stored_execution(store, run.execution_id)
    assert execution is not None
    assert execution.summary.status is RunStatus.COMPLETED
    assert execution.summary.background is True


async def test_drain_ends_every_run_cancelled_before_returning(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), delay("wait", 10_000)))
    runs = [await manager.start(workflow, {}, started_by=None) for _ in range(3)]
    feeds = [manager.subscribe(run.execution_id) for run in runs]
    await trio.sleep(0.05)
    with trio.fail_after(5):
        await manager.drain()
    for run, feed in zip(runs, feeds, strict=True):
        events = await collect(feed)
        assert data(events[-1])["error"] == CANCELLED_BY_SHUTDOWN
        execution = await stored_execution(store, run.execution_id)
        assert execution is not None
        assert execution.summary.status is RunStatus.CANCELLED
    with pytest.raises(ShuttingDown):
        await manager.start(workflow, {}, started_by=None)


@pytest.mark.parametrize("run_settings", [RunSettings(subscriber_bytes=300)])
async def test_a_subscriber_that_falls_behind_catches_up_from_the_store(
    manager: RunManager, save_workflow: SaveWorkflow
) -> None:
    nodes = [trigger(), *(transform(f"n{i}", i) for i in range(30))]
    run = await manager.start(await save_workflow(chain(*nodes)), {}, started_by=None)
    feed = manager.subscribe(run.execution_id)
    first = await feed.receive()
    await run.finished.wait()  # everything was published while the feed did not read
    events = [first, *await collect(feed)]
    assert [event.seq for event in events] == list(range(1, 2 + 2 * 31 + 1))
    assert names(events)[-1] == "complete"


@pytest.mark.parametrize("run_settings", [RunSettings(subscriber_bytes=300)])
async def test_events_taken_at_hand_come_once_in_order_across_drops_and_catch_ups(
    manager: RunManager, save_workflow: SaveWorkflow
) -> None:
    """As a stream takes them: one `receive`, then every event at hand (`receive_nowait`),
    while the live run publishes more than a 300-byte subscription holds between two reads, so
    the feed is dropped and catches up from the store again and again (its page and its new
    subscription overlap: the events of both are given once)."""
    steps = [(transform(f"t{i}", "x" * 200), delay(f"d{i}", 2)) for i in range(15)]
    nodes = [trigger(), *(node for step in steps for node in step)]
    run = await manager.start(await save_workflow(chain(*nodes)), {}, started_by=None)
    feed = manager.subscribe(run.execution_id)
    events: list[StoredEvent] = []
    with trio.fail_after(10):
        while not (events and events[-1].terminal):
            events.append(await feed.receive())
            while (at_hand := feed.receive_nowait()) is not None:
                events.append(at_hand)
            await trio.sleep(0.01)  # reads slower than the run publishes
    assert [event.seq for event in events] == list(range(1, 2 + 2 * len(nodes) + 1))
    assert feed.receive_nowait() is None


async def test_a_late_subscriber_replays_after_a_sequence_number(
    manager: RunManager, save_workflow: SaveWorkflow
) -> None:
    run = await manager.start(await save_workflow(chain(trigger())), {}, started_by=None)
    await run.finished.wait()
    events = await collect(manager.subscribe(run.execution_id, after=2))
    assert [(event.seq, event.name) for event in events] == [(3, "node_complete"), (4, "complete")]


@pytest.mark.parametrize("run_settings", [RunSettings(max_runs_per_workspace=1)])
async def test_a_workspace_cannot_exceed_its_concurrent_runs(
    manager: RunManager, save_workflow: SaveWorkflow
) -> None:
    workflow = await save_workflow(chain(trigger(), delay("wait", 10_000)))
    first = await manager.start(workflow, {}, started_by=None)
    with pytest.raises(TooManyRequests):
        await manager.start(workflow, {}, started_by=None)
    manager.detach(first)
    await first.finished.wait()
    second = await manager.start(workflow, {}, started_by=None)
    manager.detach(second)


async def test_a_run_that_crashes_fails_alone(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    broken = chain(trigger(), transform("a", 1))
    broken["edges"].append({"source": "a", "target": "ghost"})  # bypasses validation
    crashed = await manager.start(await save_workflow(broken), {}, started_by=None)
    events = await collect(manager.subscribe(crashed.execution_id))
    assert names(events)[-1] == "error"
    assert "server log" in data(events[-1])["error"]
    healthy = await manager.start(await save_workflow(chain(trigger())), {}, started_by=None)
    assert names(await collect(manager.subscribe(healthy.execution_id)))[-1] == "complete"


async def test_a_node_id_the_store_refuses_fails_its_run_with_every_event_and_log(
    manager: RunManager, store: Store, save_workflow: SaveWorkflow
) -> None:
    # A lone surrogate in a node's id: the door refuses it now, an earlier version saved it.
    doc = chain(trigger(), transform("x\ud800", 1), transform("after", 2), transform("end", 3))
    run = await manager.start(await save_workflow(doc), {}, started_by=None)
    events = await collect(manager.subscribe(run.execution_id))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [event.name for event in events if event.terminal] == ["error"]
    assert events[-1].terminal
    starts = [data(e)["nodeId"] for e in events if e.name == "node_start"]
    assert sorted(starts) == sorted(data(e)["nodeId"] for e in events if e.name == "node_complete")
    execution = await stored_execution(store, run.execution_id)
    assert execution is not None
    assert execution.summary.status is RunStatus.FAILED
    assert [log["nodeId"] for log in execution.logs] == ["trigger", "x\\ud800", "after", "end"]


async def test_the_shutdown_does_not_wait_for_runs_whose_row_waits_for_the_store(
    manager: RunManager, save_workflow: SaveWorkflow, tmp_path: Path
) -> None:
    workflow = await save_workflow(chain(trigger()))
    refused = []

    async def start() -> None:
        with pytest.raises(ShuttingDown):
            await manager.start(workflow, {}, started_by=None)
        refused.append(trio.current_time())

    with write_lock_held(tmp_path / "runs.db"):
        async with trio.open_nursery() as nursery:
            for _ in range(4):  # each row waits for the lock, up to 5 s, one after the other
                nursery.start_soon(start)
            await trio.sleep(0.5)
            with trio.fail_after(1):
                await manager.drain()
    assert len(refused) == 4
    assert manager.running() == []
