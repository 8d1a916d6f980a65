"""Property: whatever the graphs, wherever each run is cancelled, and whatever the store does
meanwhile, each run sends exactly one terminal event, last, its stored status says the same,
each node has exactly one log, and nothing is left RUNNING.

Two or three runs go at once: the journal commits what all runs sent meanwhile in one batch, so a
fault in a batch concerns every run in it, and the bug guarded against was one run's refused
record dropping other runs' events. The store underneath is the real SQLite one, made to:
- not answer for a few writes in a row (StoreUnavailable), any of them: a run's row being
  created (`start` must then leave nothing behind) or a batch of the journal (which must wait,
  and lose nothing);
- refuse a record for good: one transform node of one run outputs a lone UTF-16 surrogate,
  which SQLite cannot encode. That run alone ends FAILED, and what was refused has a stand-in
  that says so.
"""

import json
import tempfile
from pathlib import Path
from typing import Any

import attrs
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flowtrux.engine.validation import validate_workflow
from flowtrux.errors import StoreUnavailable
from flowtrux.runs.manager import RunManager, RunSettings, open_run_manager
from flowtrux.runs.run import Run
from flowtrux.store.executions import StoredEvent
from flowtrux.store.store import Store, open_store
from flowtrux.store.workflows import Workflow
from tests.faults import FlakyWrites
from tests.stored import stored_execution
from tests.support import condition, delay, edge, fail, transform, trigger, workflow

STATUS_OF_TERMINAL = {"complete": "COMPLETED", "error": "FAILED", "cancelled": "CANCELLED"}
POISON = "\ud800"  # a lone UTF-16 surrogate: SQLite cannot encode it and refuses its record
REFUSED = "FlowTrux could not store this run's events"
# Each write the journal cannot make costs it a pause (0.05 s, then 0.1, 0.2): a short stretch
# of failures tests the same waiting as a long one, for a fraction of the time.
MOST_FAILING_IN_A_ROW = 3


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid DAG: each node hangs off one or two earlier nodes, so all are reachable."""
    nodes = [trigger(staticData={"flag": draw(st.booleans())})]
    edges = []
    for index in range(1, draw(st.integers(1, 8)) + 1):
        node_id = f"n{index}"
        kind = draw(st.sampled_from(["transform", "delay", "condition", "fail"]))
        if kind == "transform":
            nodes.append(transform(node_id, {"i": index, "flag": "{{trigger.data.flag}}"}))
        elif kind == "delay":
            nodes.append(delay(node_id, draw(st.integers(0, 30))))
        elif kind == "condition":
            nodes.append(condition(node_id, "trigger.data.flag == true"))
        else:
            on_error = draw(st.sampled_from(["fail", "continue"]))
            nodes.append(fail(node_id, "planned failure", onError=on_error))
        parents = draw(st.sets(st.integers(0, index - 1), min_size=1, max_size=2))
        for parent in sorted(parents):
            source = nodes[parent]
            branch = draw(st.sampled_from(["true", "false", None]))
            edges.append(
                edge(source["id"], node_id, branch if source["type"] == "condition" else None)
            )
    doc = workflow(nodes, edges)
    assert validate_workflow(doc) == []
    return doc


CancelPoint = tuple[str, int]
cancel_points = st.one_of(
    st.just(("never", 0)),
    st.tuples(st.just("after_events"), st.integers(0, 20)),  # the client goes away
    st.tuples(st.just("after_ms"), st.integers(0, 40)),  # the Stop button
)

# Stretches of writes the store cannot take: (writes that go through first, writes that then
# fail). Counted from the first run's start, whose row is write 0.
Outages = list[tuple[int, int]]
stretches = st.tuples(st.integers(0, 10), st.integers(1, MOST_FAILING_IN_A_ROW))


@st.composite
def outages(draw: st.DrawFn) -> Outages:
    """Up to three stretches; how many is drawn first, so that most examples have some (st.lists
    draws mostly short lists) and a failing one still shrinks to none."""
    return [draw(stretches) for _ in range(draw(st.integers(0, 3)))]


def failing_writes(outages: Outages) -> list[int]:
    """The numbers of the writes that fail. At least one write goes through between two
    stretches, so that no more than MOST_FAILING_IN_A_ROW fail in a row."""
    numbers: list[int] = []
    next_write = 0
    for passing, failing in outages:
        first = next_write + passing
        numbers.extend(range(first, first + failing))
        next_write = first + failing + 1
    return numbers


@attrs.frozen
class Scenario:
    runs: list[tuple[dict[str, Any], CancelPoint]]  # started in this order, all at once
    poisoned: tuple[int, str] | None  # (run, transform node) whose output the store refuses
    outages: Outages

    def docs(self) -> list[dict[str, Any]]:
        docs = [doc for doc, _ in self.runs]
        if self.poisoned is not None:
            run, node_id = self.poisoned
            docs[run] = poison(docs[run], node_id)
        return docs


def poison(doc: dict[str, Any], node_id: str) -> dict[str, Any]:
    """`doc` with the transform `node_id` outputting POISON as well (a copy: hypothesis prints
    the drawn document as drawn)."""
    nodes = [dict(node) for node in doc["nodes"]]
    for node in nodes:
        if node["id"] == node_id:
            node["config"] = {"output": {**node["config"]["output"], "poison": POISON}}
    return {**doc, "nodes": nodes}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    runs = draw(st.lists(st.tuples(graphs(), cancel_points), min_size=2, max_size=3))
    transforms = [
        (index, node["id"])
        for index, (doc, _) in enumerate(runs)
        for node in doc["nodes"]
        if node["type"] == "transform"
    ]
    poisoned = draw(st.none() | st.sampled_from(transforms)) if transforms else None
    return Scenario(runs, poisoned, draw(outages()))


async def scenario(db: Path, plan: Scenario) -> list[str]:
    """Run `plan` and check it; return what happened, for hypothesis's statistics."""
    async with open_store(f"sqlite:///{db}") as real:
        flaky = FlakyWrites(real.db)
        store = Store(real.url, flaky)
        async with open_run_manager(store, RunSettings()) as runs:
            space = await store.workspaces.ensure("Props")
            docs = plan.docs()
            saved = [  # straight through the store, which does not validate: POISON stays
                await store.workflows.create(space.id, doc["name"], doc["nodes"], doc["edges"])
                for doc in docs
            ]
            flaky.fail_writes(failing_writes(plan.outages))
            started: list[Run] = []
            starts_raised = 0
            streams: list[list[StoredEvent]] = []
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for workflow_, (_, cancel) in zip(saved, plan.runs, strict=True):
                        run, raised = await start_despite_faults(runs, store, workflow_, started)
                        starts_raised += raised
                        started.append(run)
                        streams.append([])
                        nursery.start_soon(follow, runs, run, cancel, streams[-1])

            refused = []
            for index, (run, doc, events) in enumerate(zip(started, docs, streams, strict=True)):
                poisoned_node = None
                if plan.poisoned is not None and plan.poisoned[0] == index:
                    poisoned_node = plan.poisoned[1]
                if await check_run(store, run.execution_id, doc, events, poisoned_node):
                    refused.append(run)

            ids = {run.execution_id for run in started}
            assert await execution_ids(store) == ids  # no row of a start that failed
            running = await store.db.read(
                lambda conn: conn.execute(
                    "SELECT count(*) FROM executions WHERE status = 'RUNNING'"
                ).fetchone()[0]
            )
            assert running == 0
            assert runs.running() == []
            assert runs.hub.statistics().live_runs == 0
        return [
            f"{flaky.failed} writes failed",
            f"{len(refused)} runs refused",
            f"{starts_raised} starts raised StoreUnavailable",
        ]


async def start_despite_faults(
    runs: RunManager, store: Store, workflow_: Workflow, started: list[Run]
) -> tuple[Run, int]:
    """Start a run, trying again while the store cannot answer (or the journal waits for it);
    return it and how many attempts raised. One that raised must have left nothing: no row, no
    run in `running()`."""
    raised = 0
    while True:
        try:
            return await runs.start(workflow_, {}, started_by=None), raised
        except StoreUnavailable:
            raised += 1
            ids = {run.execution_id for run in started}
            assert await execution_ids(store) == ids
            assert {run.execution_id for run in runs.running()} <= ids
            assert runs.hub.statistics().live_runs <= len(ids)
        await trio.sleep(0.01)


async def follow(
    runs: RunManager, run: Run, cancel: CancelPoint, events: list[StoredEvent]
) -> None:
    """Read the run's stream into `events` as a client would, going away (or pressing Stop)
    at `cancel`; return once the run has ended."""
    feed = runs.subscribe(run.execution_id)
    how, when = cancel
    async with trio.open_nursery() as nursery:
        if how == "after_ms":
            nursery.start_soon(_cancel_later, runs.detach, run, when / 1000)
        while True:
            if how == "after_events" and len(events) == when:
                runs.detach(run)
            try:
                events.append(await feed.receive())
            except trio.EndOfChannel:
                break
        nursery.cancel_scope.cancel()
    await run.finished.wait()


async def _cancel_later(detach: Any, run: Any, seconds: float) -> None:
    await trio.sleep(seconds)
    detach(run)


async def check_run(
    store: Store,
    execution_id: str,
    doc: dict[str, Any],
    events: list[StoredEvent],
    poisoned_node: str | None,
) -> bool:
    """Check one run's stream against its history; return whether the store refused it."""
    terminal = [event for event in events if event.terminal]
    assert len(terminal) == 1
    assert events[-1] is terminal[0]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    stored = await store.executions.events_after(execution_id, 0)
    assert stored.events == events  # the stream sent what is stored, and only that
    end = json.loads(terminal[0].data)
    execution = await stored_execution(store, execution_id)
    assert execution is not None
    assert execution.summary.status.value == STATUS_OF_TERMINAL[terminal[0].name]
    assert execution.summary.error == end["error"]

    began = [json.loads(e.data)["nodeId"] for e in events if e.name == "node_start"]
    ended = [json.loads(e.data)["nodeId"] for e in events if e.name == "node_complete"]
    logs = {log["nodeId"]: log for log in execution.logs}
    assert len(logs) == len(execution.logs)  # no node logged twice
    refused = (end["error"] or "").startswith(REFUSED)
    assert sorted(began) == sorted(ended)  # each started node ended exactly once
    assert sorted(logs) == sorted(node["id"] for node in doc["nodes"])
    if refused:
        # The poisoned node ran; what the store refused of it has a stand-in that says so.
        assert poisoned_node is not None, "a run without poison lost its records"
        assert terminal[0].name == "error"
        assert logs[poisoned_node]["error"].startswith("FlowTrux could not store this log")
    elif poisoned_node is not None:  # it never output what the store would refuse
        assert logs[poisoned_node]["status"] in {"skipped", "cancelled"}
    return refused


async def execution_ids(store: Store) -> set[str]:
    rows = await store.db.read(lambda conn: conn.execute("SELECT id FROM executions").fetchall())
    return {row["id"] for row in rows}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=scenarios())
def test_each_run_ends_once_as_stored_despite_store_faults(tmp_path: Path, plan: Scenario) -> None:
    # A database of its own: what a failing example left must not fail the next ones, or
    # hypothesis could not shrink it.
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        notes = trio.run(scenario, Path(directory) / "props.db", plan)
    for note in notes:
        event(note)
