"""The journal against a real SQLite store: group commits, a store that cannot answer, and
records it refuses (each fails only its own run)."""

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from flowtrux.engine.events import NodeCompleted, NodeStarted
from flowtrux.engine.logs import ExecutionLog
from flowtrux.engine.states import NodeStatus, RunStatus
from flowtrux.errors import StoreUnavailable
from flowtrux.runs.feed import Feed
from flowtrux.runs.hub import Hub
from flowtrux.runs.journal import Journal
from flowtrux.runs.outcome import Outcome
from flowtrux.store.executions import Appended, ExecutionStore, Finish, JournalRecord, NewEvent
from flowtrux.store.store import Store, open_store
from tests.faults import FlakyWrites, write_lock_held
from tests.runs.conftest import SaveWorkflow, collect, new_execution
from tests.stored import stored_execution

POISON = NodeStarted("n1", "bad \ud800 name", "transform")  # a lone surrogate: SQLite refuses it
TIMESTAMP = "2026-11-28T00:00:00.000Z"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store whose calls give up on a lock after 0.2 s (5 s in production)."""
    async with open_store(f"sqlite:///{tmp_path}/journal.db", lock_wait_s=0.2) as store:
        yield store


@asynccontextmanager
async def writing(journal: Journal) -> AsyncIterator[trio.Nursery]:
    """The journal's writer runs for the block and is stopped however the block ends: it is
    shielded, so a failing test would otherwise wait for it for ever."""
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        try:
            yield nursery
        finally:
            journal.stop()


async def stored(store: Store, execution_id: str) -> list[tuple[int, str]]:
    page = await store.executions.events_after(execution_id, 0)
    return [(event.seq, event.name) for event in page.events]


async def status(store: Store, execution_id: str) -> tuple[RunStatus, str | None]:
    execution = await stored_execution(store, execution_id)
    assert execution is not None
    return execution.summary.status, execution.summary.error


async def test_records_appended_meanwhile_share_one_commit(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-1")
    journal = Journal(store.executions, Hub())
    async with writing(journal):
        recorder = journal.recorder("exec-1")
        recorder.start("wf", "Workflow", TIMESTAMP)
        for index in range(50):
            recorder.emit(NodeStarted(f"n{index}", "Node", "transform"))
        await recorder.finish(Outcome.completed(None), 5)
    assert [seq for seq, _ in await stored(store, "exec-1")] == list(range(1, 53))
    assert (await status(store, "exec-1"))[0] is RunStatus.COMPLETED


async def test_a_refused_record_fails_only_its_own_run_and_the_others_commit(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    for execution_id in ("exec-ok", "exec-bad", "exec-also-ok"):
        await new_execution(store, save_workflow, execution_id)
    hub, refused = Hub(), []
    journal = Journal(store.executions, hub, on_refused=lambda e, why: refused.append((e, why)))
    feeds = {}
    for execution_id in ("exec-ok", "exec-bad", "exec-also-ok"):
        hub.open(execution_id)
        feeds[execution_id] = Feed(execution_id, hub, store.executions, "proc-test")
    async with writing(journal):
        recorders = {e: journal.recorder(e) for e in feeds}
        for execution_id, recorder in recorders.items():  # all in one batch
            recorder.start("wf", "Workflow", TIMESTAMP)
            recorder.emit(POISON if execution_id == "exec-bad" else NodeStarted("n", "N", "t"))
        with trio.fail_after(5):
            async with trio.open_nursery() as ends:
                for recorder in recorders.values():
                    ends.start_soon(recorder.finish, Outcome.completed({"done": True}), 5)

    for execution_id in ("exec-ok", "exec-also-ok"):
        assert await stored(store, execution_id) == [
            (1, "start"),
            (2, "node_start"),
            (3, "complete"),
        ]
        assert await status(store, execution_id) == (RunStatus.COMPLETED, None)
        assert [e.seq for e in await collect(feeds[execution_id])] == [1, 2, 3]
    # The refused record has a stand-in at its place; the run's end is a failure.
    events = (await store.executions.events_after("exec-bad", 0)).events
    assert [(e.seq, e.name) for e in events] == [(1, "start"), (2, "node_start"), (3, "error")]
    stand_in = json.loads(events[1].data)
    assert stand_in.pop("error").startswith(
        "FlowTrux could not store this event (UnicodeEncodeError"
    )
    assert stand_in == {"nodeId": "n1", "nodeName": "bad \\ud800 name", "nodeType": "transform"}
    bad_status, error = await status(store, "exec-bad")
    assert bad_status is RunStatus.FAILED
    assert error is not None
    assert error.startswith("FlowTrux could not store this run's events (UnicodeEncodeError")
    assert json.loads(events[2].data)["error"] == error
    assert await collect(feeds["exec-bad"]) == events
    assert refused == [("exec-bad", error)]


async def test_a_refused_run_keeps_what_comes_later_and_ends_failed(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-bad")
    refused = trio.Event()
    journal = Journal(store.executions, Hub(), on_refused=lambda e, why: refused.set())
    async with writing(journal):
        recorder = journal.recorder("exec-bad")
        recorder.start("wf", "Workflow", TIMESTAMP)
        await trio.testing.wait_all_tasks_blocked()  # `start` is committed on its own
        recorder.emit(POISON)
        with trio.fail_after(5):
            await refused.wait()
        recorder.emit(NodeStarted("n2", "After", "transform"))  # the run is being stopped
        await recorder.finish(Outcome.completed("ignored"), 7)
    assert await stored(store, "exec-bad") == [
        (1, "start"),
        (2, "node_start"),  # the stand-in
        (3, "node_start"),
        (4, "error"),
    ]
    assert (await status(store, "exec-bad"))[0] is RunStatus.FAILED


async def test_while_the_store_is_locked_the_journal_waits_announces_nothing_and_loses_nothing(
    store: Store, save_workflow: SaveWorkflow, tmp_path: Path
) -> None:
    await new_execution(store, save_workflow, "exec-1")
    hub = Hub()
    hub.open("exec-1")
    journal = Journal(store.executions, hub)
    feed = Feed("exec-1", hub, store.executions, "proc-test")
    async with writing(journal) as nursery:
        recorder = journal.recorder("exec-1")
        with write_lock_held(tmp_path / "journal.db"):
            recorder.start("wf", "Workflow", TIMESTAMP)
            nursery.start_soon(recorder.finish, Outcome.completed(1), 5)
            await trio.sleep(1)  # several attempts, each giving up after 0.2 s
            assert not journal.store_available
            with trio.move_on_after(0.1) as paused:
                await journal.wait_for_room()  # a run would wait before its next node
            assert paused.cancelled_caught
            with trio.move_on_after(0.1):
                early = await feed.receive()
                pytest.fail(f"announced before it was stored: {early}")
        events = await collect(feed)
        assert journal.store_available
    assert [(e.seq, e.name) for e in events] == [(1, "start"), (2, "complete")]
    assert (await status(store, "exec-1"))[0] is RunStatus.COMPLETED


async def test_a_run_whose_end_is_refused_too_has_its_streams_closed(store: Store) -> None:
    hub = Hub()
    hub.open("exec-ghost")  # no row: every record of it breaks a foreign key
    journal = Journal(store.executions, hub)
    feed = Feed("exec-ghost", hub, store.executions, "proc-test")
    async with writing(journal):
        recorder = journal.recorder("exec-ghost")
        recorder.start("wf", "Workflow", TIMESTAMP)
        with trio.fail_after(5):
            await recorder.finish(Outcome.completed(None), 5)  # returns: nobody waits for ever
    assert await collect(feed) == []
    assert hub.statistics().live_runs == 0


async def test_a_store_that_answers_with_a_refusal_is_available_again(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-bad")
    flaky = FlakyWrites(store.db)
    refused = trio.Event()
    journal = Journal(
        Store(store.url, flaky).executions, Hub(), on_refused=lambda e, why: refused.set()
    )
    async with writing(journal):
        flaky.fail_writes([0])  # first it cannot answer, then it refuses
        journal.recorder("exec-bad").emit(POISON)
        with trio.fail_after(5):
            await refused.wait()
            await journal.wait_for_room()  # runs do not stall on the refused run's account
        assert journal.store_available


@attrs.frozen
class SmallTransactions(ExecutionStore):
    """The real store, except that it cannot take more than `most` records at once, as a
    nearly full disk cannot take a large transaction; `taken` records what it took."""

    most: int = 4
    taken: list[list[JournalRecord]] = attrs.field(factory=list)

    async def append(self, records: Sequence[JournalRecord]) -> Appended:
        if len(records) > self.most:
            raise StoreUnavailable("SQLite: database or disk is full", full=True)
        appended = await super().append(records)
        self.taken.append(list(records))
        return appended


async def test_a_batch_the_store_keeps_failing_is_written_in_smaller_transactions(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await new_execution(store, save_workflow, "exec-1")
    small = SmallTransactions(store.db)
    journal = Journal(small, Hub())
    async with writing(journal):
        recorder = journal.recorder("exec-1")
        recorder.start("wf", "Workflow", TIMESTAMP)
        for index in range(20):
            recorder.emit(NodeStarted(f"n{index}", "Node", "transform"))
        with trio.fail_after(10):
            await recorder.finish(Outcome.completed(None), 5)
    assert [seq for seq, _ in await stored(store, "exec-1")] == list(range(1, 23))
    assert (await status(store, "exec-1"))[0] is RunStatus.COMPLETED
    assert all(len(records) <= 4 for records in small.taken)
    (with_end,) = [records for records in small.taken if isinstance(records[-1], Finish)]
    assert isinstance(with_end[-2], NewEvent)  # the terminal event, with its status
    assert with_end[-2].terminal
    assert journal.store_available


TOO_BIG = "more than the disk has room for"


@attrs.frozen
class NoRoomFor(ExecutionStore):
    """The real store, except that it never has room for a record whose output is TOO_BIG,
    as a full disk has none for an 80 MB event."""

    async def append(self, records: Sequence[JournalRecord]) -> Appended:
        if any(_output_of(record) == TOO_BIG for record in records):
            raise StoreUnavailable("SQLite: database or disk is full", full=True)
        return await super().append(records)


def _output_of(record: JournalRecord) -> object:
    payload = record.payload if isinstance(record, NewEvent) else getattr(record, "log", None)
    return payload.get("output") if isinstance(payload, dict) else None


async def test_a_record_a_full_store_has_no_room_for_fails_its_run_and_the_others_go_on(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    for execution_id in ("exec-big", "exec-ok"):
        await new_execution(store, save_workflow, execution_id)
    journal = Journal(NoRoomFor(store.db), Hub())
    big = ExecutionLog("n1", "Big", "transform", NodeStatus.SUCCESS, output=TOO_BIG)
    async with writing(journal):
        recorders = {e: journal.recorder(e) for e in ("exec-big", "exec-ok")}
        recorders["exec-big"].emit(NodeCompleted(big))
        recorders["exec-ok"].emit(NodeStarted("n1", "Small", "transform"))
        with trio.fail_after(10):
            async with trio.open_nursery() as ends:
                for recorder in recorders.values():
                    ends.start_soon(recorder.finish, Outcome.completed(None), 5)
    assert await stored(store, "exec-ok") == [(1, "node_start"), (2, "complete")]
    assert (await status(store, "exec-ok"))[0] is RunStatus.COMPLETED
    big_status, error = await status(store, "exec-big")
    assert big_status is RunStatus.FAILED
    assert error == "FlowTrux could not store this run's events (SQLite: database or disk is full)"
    events = (await store.executions.events_after("exec-big", 0)).events
    assert [(e.seq, e.name) for e in events] == [(1, "node_complete"), (2, "error")]
    assert json.loads(events[0].data)["output"] is None  # the stand-in keeps no data
