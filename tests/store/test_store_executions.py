"""Executions: the run's row, its journal (events, node logs, terminal write) and history."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowtrux.access import Role
from flowtrux.engine.states import RunStatus
from flowtrux.ids import new_id
from flowtrux.store.executions import (
    Backgrounded,
    ExecutionFilter,
    ExecutionSummary,
    Finish,
    JournalRecord,
    NewEvent,
    NewExecution,
    NodeLogRecord,
    StoredEvent,
)
from flowtrux.store.store import Store
from flowtrux.store.users import User
from flowtrux.store.workspaces import Workspace
from tests.stored import stored_execution

# Millisecond precision: what the store keeps.
STARTED = datetime(2026, 11, 28, 13, 45, 0, 123000, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=2, milliseconds=5)
TRIGGER_DATA: dict[str, Any] = {"n": 5, "name": "Zoë", "tags": ["a", None, True]}


def new_execution(
    workspace_id: str,
    workflow_id: str = "wf-1",
    started_at: datetime = STARTED,
    process_id: str = "proc-1",
) -> NewExecution:
    return NewExecution(
        id=new_id("exec"),
        workflow_id=workflow_id,
        workspace_id=workspace_id,
        workflow_name=f"Workflow {workflow_id}",
        trigger="manual",
        trigger_data=TRIGGER_DATA,
        started_by=None,
        process_id=process_id,
        started_at=started_at,
    )


def event(execution_id: str, seq: int, name: str = "node") -> NewEvent:
    return NewEvent(execution_id, seq, name, {"seq": seq})


def stored(new: NewEvent) -> StoredEvent:
    """`new` as the store gives it back: its payload as one line of compact JSON."""
    return StoredEvent(
        new.execution_id, new.seq, new.name, json.dumps(new.payload, separators=(",", ":"))
    )


async def stored_seqs(store: Store, execution_id: str, after: int = 0) -> list[int]:
    page = await store.executions.events_after(execution_id, after)
    assert page.complete
    return [e.seq for e in page.events]


def node_log(execution_id: str, position: int) -> NodeLogRecord:
    return NodeLogRecord(execution_id, position, f"node-{position}", {"position": position})


def finish(
    execution_id: str, status: RunStatus = RunStatus.COMPLETED, output: Any = None
) -> Finish:
    return Finish(
        execution_id,
        status,
        output,
        "boom" if status is RunStatus.FAILED else None,
        FINISHED,
        2005,
    )


async def started(store: Store, workspace_id: str, **kwargs: Any) -> str:
    new = new_execution(workspace_id, **kwargs)
    await store.executions.create(new)
    return new.id


async def test_a_new_execution_is_running(store: Store, workspace: Workspace) -> None:
    new = new_execution(workspace.id)
    await store.executions.create(new)

    detail = await stored_execution(store, new.id)

    assert detail is not None
    assert detail.summary == ExecutionSummary(
        id=new.id,
        workflow_id="wf-1",
        workspace_id=workspace.id,
        workflow_name="Workflow wf-1",
        status=RunStatus.RUNNING,
        trigger="manual",
        background=False,
        started_at=STARTED,
        finished_at=None,
        duration_ms=None,
        error=None,
    )
    assert detail.trigger_data == TRIGGER_DATA
    assert detail.output is None
    assert detail.logs == []
    assert await stored_seqs(store, new.id) == []


async def test_get_of_a_missing_execution_is_none(store: Store) -> None:
    assert await stored_execution(store, "exec-missing") is None


async def test_a_batch_lands_whole_events_in_seq_order_logs_in_position_order(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    output = {"result": [1, 2, 3], "text": "done ✓"}
    events = [event(run, seq) for seq in (3, 1, 2)] + [event(run, 4, "complete")]
    logs = [node_log(run, position) for position in (3, 1, 2)]

    batch: list[JournalRecord] = [events[0], logs[0], events[1], finish(run, output=output)]
    batch += [logs[1], events[2], logs[2], events[3]]  # the terminal event last

    appended = await store.executions.append(batch)

    assert appended.stale == []
    assert appended.events == [stored(e) for e in events]  # as given, to publish in that order
    page = await store.executions.events_after(run, after=0)
    assert [e.seq for e in page.events] == [1, 2, 3, 4]
    assert page.events == sorted(appended.events, key=lambda e: e.seq)
    assert page.events[-1].terminal
    assert not any(e.terminal for e in page.events[:-1])
    detail = await stored_execution(store, run)
    assert detail is not None
    assert detail.logs == [{"position": 1}, {"position": 2}, {"position": 3}]
    assert detail.output == output
    assert detail.summary.status is RunStatus.COMPLETED
    assert detail.summary.error is None
    assert detail.summary.finished_at == FINISHED
    assert detail.summary.duration_ms == 2005


async def test_a_failed_run_keeps_its_error(store: Store, workspace: Workspace) -> None:
    run = await started(store, workspace.id)

    assert (await store.executions.append([finish(run, RunStatus.FAILED)])).stale == []

    detail = await stored_execution(store, run)
    assert detail is not None
    assert (detail.summary.status, detail.summary.error) == (RunStatus.FAILED, "boom")
    assert detail.output is None


async def test_a_batch_that_fails_lands_nothing(store: Store, workspace: Workspace) -> None:
    run = await started(store, workspace.id)
    await store.executions.append([event(run, 1)])

    with pytest.raises(sqlite3.IntegrityError):
        await store.executions.append(
            [event(run, 2), node_log(run, 1), Backgrounded(run), event(run, 1), finish(run)]
        )

    assert await stored_seqs(store, run) == [1]
    detail = await stored_execution(store, run)
    assert detail is not None
    assert detail.logs == []
    assert detail.summary.status is RunStatus.RUNNING
    assert detail.summary.background is False


async def test_events_after_returns_only_later_events_and_pages_by_count(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    other = await started(store, workspace.id)
    await store.executions.append([event(run, seq) for seq in range(1, 11)] + [event(other, 1)])

    assert await stored_seqs(store, run, after=7) == [8, 9, 10]
    assert await stored_seqs(store, run, after=10) == []

    pages: list[tuple[list[int], bool]] = []
    after, complete = 0, False
    while not complete:
        page = await store.executions.events_after(run, after=after, max_events=4)
        pages.append(([e.seq for e in page.events], page.complete))
        after, complete = page.events[-1].seq, page.complete
    assert pages == [([1, 2, 3, 4], False), ([5, 6, 7, 8], False), ([9, 10], True)]
    assert await stored_seqs(store, other) == [1]


async def test_a_page_holds_what_fits_its_bytes_and_at_least_one_event(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    big = "x" * 1000
    await store.executions.append([NewEvent(run, seq, "node", big) for seq in range(1, 6)])

    pages = []
    after, complete = 0, False
    while not complete:
        page = await store.executions.events_after(run, after=after, max_bytes=2100)
        pages.append([e.seq for e in page.events])
        after, complete = page.events[-1].seq, page.complete
    assert pages == [[1, 2], [3, 4], [5]]  # each event is 1,002 characters of JSON
    tiny = await store.executions.events_after(run, after=0, max_bytes=10)
    assert ([e.seq for e in tiny.events], tiny.complete) == ([1], False)


async def test_logs_come_as_stored_json_a_page_of_bytes_at_a_time(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    logs = [{"nodeId": f"n{position}", "note": "é" * 500} for position in range(1, 6)]
    await store.executions.append(
        [NodeLogRecord(run, position, f"n{position}", log) for position, log in enumerate(logs, 1)]
    )

    pages, after, complete = [], 0, False
    while not complete:
        page = await store.executions.logs_after(run, after, max_bytes=2100)
        pages.append(json.loads(b"[" + page.json + b"]"))
        after, complete = page.last_position, page.complete
    # Each log is 1,018 bytes of UTF-8 JSON (the é are two bytes each): two fit a page.
    assert [[log["nodeId"] for log in page] for page in pages] == [
        ["n1", "n2"],
        ["n3", "n4"],
        ["n5"],
    ]
    assert [log for page in pages for log in page] == logs
    tiny = await store.executions.logs_after(run, 0, max_bytes=10)
    assert (json.loads(b"[" + tiny.json + b"]"), tiny.complete) == ([logs[0]], False)
    found = await store.executions.stored(run)
    assert found is not None
    assert json.loads(found.trigger_data) == TRIGGER_DATA
    assert found.output == b"null"


async def test_a_second_finish_is_rejected_and_the_first_status_stays(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    assert (await store.executions.append([finish(run, RunStatus.CANCELLED, "first")])).stale == []

    appended = await store.executions.append([finish(run, RunStatus.COMPLETED, "second")])

    assert appended.stale == [run]
    detail = await stored_execution(store, run)
    assert detail is not None
    assert detail.summary.status is RunStatus.CANCELLED
    assert detail.output == "first"


async def test_a_finish_after_another_process_interrupted_the_run_is_rejected(
    store: Store, workspace: Workspace
) -> None:
    run = await started(store, workspace.id)
    done = await started(store, workspace.id)
    await store.db.write(
        lambda conn: conn.execute(
            "UPDATE executions SET status = 'INTERRUPTED' WHERE id = ?", (run,)
        )
    )

    appended = await store.executions.append([event(run, 1, "complete"), finish(run), finish(done)])

    assert appended.stale == [run]
    statuses = {}
    for execution_id in (run, done):
        detail = await stored_execution(store, execution_id)
        assert detail is not None
        statuses[execution_id] = detail.summary.status
    assert statuses == {run: RunStatus.INTERRUPTED, done: RunStatus.COMPLETED}


async def test_backgrounded_sets_background(store: Store, workspace: Workspace) -> None:
    run = await started(store, workspace.id)
    foreground = await started(store, workspace.id)

    await store.executions.append([Backgrounded(run)])

    details = [await stored_execution(store, run), await stored_execution(store, foreground)]
    assert [d.summary.background for d in details if d is not None] == [True, False]


# History: summaries


@pytest.fixture
async def history(store: Store, user: User, workspace: Workspace) -> list[ExecutionSummary]:
    """Executions in `workspace` (owned by `user`), in a workspace where `user` is a viewer, and
    in one `user` is not a member of. Returns those `user` may see, newest first."""
    viewed = await store.workspaces.ensure("Viewed")
    await store.workspaces.set_role(viewed.id, user.id, Role.VIEWER)
    foreign = await store.workspaces.ensure("Foreign")
    plan: list[tuple[str, str, int, RunStatus, bool]] = [
        # workspace, workflow, started (s after STARTED), final status, backgrounded
        (workspace.id, "wf-a", 0, RunStatus.COMPLETED, False),
        (workspace.id, "wf-a", 10, RunStatus.FAILED, True),
        (workspace.id, "wf-b", 10, RunStatus.COMPLETED, False),  # same start: id breaks ties
        (workspace.id, "wf-b", 10, RunStatus.RUNNING, True),
        (viewed.id, "wf-v", 5, RunStatus.CANCELLED, False),
        (viewed.id, "wf-v", 20, RunStatus.COMPLETED, True),
        (workspace.id, "wf-a", 30, RunStatus.RUNNING, False),
        (workspace.id, "wf-a", 30, RunStatus.COMPLETED, False),
        (foreign.id, "wf-a", 15, RunStatus.COMPLETED, False),
        (foreign.id, "wf-f", 40, RunStatus.RUNNING, True),
    ]
    for workspace_id, workflow_id, offset, status, background in plan:
        run = await started(
            store,
            workspace_id,
            workflow_id=workflow_id,
            started_at=STARTED + timedelta(seconds=offset),
        )
        records: list[JournalRecord] = [Backgrounded(run)] if background else []
        if status is not RunStatus.RUNNING:
            records.append(finish(run, status))
        await store.executions.append(records)
    member_of = {workspace.id, viewed.id}
    visible = await store.db.read(
        lambda conn: [row["id"] for row in conn.execute("SELECT id FROM executions")]
    )
    summaries = []
    for execution_id in visible:
        detail = await stored_execution(store, execution_id)
        assert detail is not None
        if detail.summary.workspace_id in member_of:
            summaries.append(detail.summary)
    summaries.sort(key=lambda s: (s.started_at, s.id), reverse=True)
    assert len(summaries) == 8
    return summaries


async def test_summaries_show_only_the_users_workspaces_newest_first(
    store: Store, user: User, history: list[ExecutionSummary]
) -> None:
    assert await store.executions.summaries(ExecutionFilter(user.id)) == history


async def test_summaries_of_a_user_without_workspaces_are_empty(
    store: Store, history: list[ExecutionSummary]
) -> None:
    stranger = await store.users.create("eve@example.com", "Eve", "h")

    assert await store.executions.summaries(ExecutionFilter(stranger.id)) == []


@pytest.mark.parametrize(
    ("workflow_id", "status", "background"),
    [
        ("wf-a", None, None),
        ("wf-f", None, None),  # only in a workspace the user is not a member of
        (None, RunStatus.COMPLETED, None),
        (None, RunStatus.RUNNING, None),
        (None, None, True),
        (None, None, False),
        ("wf-a", RunStatus.COMPLETED, False),
        ("wf-b", RunStatus.RUNNING, True),
    ],
)
async def test_summaries_filter_by_workflow_status_and_background(
    store: Store,
    user: User,
    history: list[ExecutionSummary],
    workflow_id: str | None,
    status: RunStatus | None,
    background: bool | None,
) -> None:
    expected = [
        s
        for s in history
        if workflow_id in (None, s.workflow_id)
        and status in (None, s.status)
        and background in (None, s.background)
    ]

    found = await store.executions.summaries(
        ExecutionFilter(user.id, workflow_id=workflow_id, status=status, background=background)
    )

    assert found == expected


async def test_summaries_limit(store: Store, user: User, history: list[ExecutionSummary]) -> None:
    assert await store.executions.summaries(ExecutionFilter(user.id, limit=3)) == history[:3]


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 50])
async def test_before_pages_through_without_overlap_or_gap(
    store: Store, user: User, history: list[ExecutionSummary], limit: int
) -> None:
    pages: list[list[ExecutionSummary]] = []
    before = None
    while page := await store.executions.summaries(
        ExecutionFilter(user.id, before=before, limit=limit)
    ):
        assert len(page) <= limit
        pages.append(page)
        before = page[-1].id

    assert [s for page in pages for s in page] == history
    assert all(len(page) == limit for page in pages[:-1])


async def test_before_pages_within_a_filter(
    store: Store, user: User, history: list[ExecutionSummary]
) -> None:
    expected = [s for s in history if s.workflow_id == "wf-a"]
    first = await store.executions.summaries(ExecutionFilter(user.id, workflow_id="wf-a", limit=2))
    rest = await store.executions.summaries(
        ExecutionFilter(user.id, workflow_id="wf-a", before=first[-1].id, limit=50)
    )

    assert first + rest == expected
