"""The journal against a real SQLite store: group commits, and what it never announces."""

import trio

from flowtrux.engine.events import NodeStarted
from flowtrux.runs.feed import Feed
from flowtrux.runs.hub import Hub
from flowtrux.runs.journal import Journal
from flowtrux.runs.outcome import Outcome
from flowtrux.store.executions import StoredEvent
from flowtrux.store.store import Store
from tests.runs.conftest import SaveWorkflow, new_execution


async def test_records_appended_meanwhile_share_one_commit(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-1")
    journal = Journal(store.executions, Hub())
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        recorder = journal.recorder("exec-1")
        recorder.start("wf", "Workflow", "2026-11-28T00:00:00.000Z")
        for index in range(50):
            recorder.emit(NodeStarted(f"n{index}", "Node", "transform"))
        await recorder.finish(Outcome.completed(None), 5)
        journal.stop()
    events = await store.executions.events_after("exec-1", 0, limit=1000)
    assert [event.seq for event in events] == list(range(1, 53))
    execution = await store.executions.get("exec-1")
    assert execution is not None
    assert execution.summary.status.value == "COMPLETED"


async def test_a_batch_the_store_refuses_is_never_announced(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-2")
    taken = StoredEvent("exec-2", 1, "start", '{"stored":true}')
    await store.executions.append([taken])  # the journal's seq 1 will clash with it
    hub = Hub()
    journal = Journal(store.executions, hub, retry_delays_s=(0.01,))
    hub.open("exec-2")
    feed = Feed("exec-2", hub, store.executions)
    seen = []
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        recorder = journal.recorder("exec-2")
        recorder.start("wf", "Workflow", "2026-11-28T00:00:00.000Z")
        with trio.fail_after(5):
            await recorder.finish(Outcome.completed(None), 5)  # returns: the batch was dropped
            while True:
                try:
                    seen.append(await feed.receive())
                except trio.EndOfChannel:
                    break
        journal.stop()
    assert seen == [taken]  # only what is stored; the refused events never reached the feed
