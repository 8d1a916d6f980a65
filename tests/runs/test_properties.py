"""Property: whatever the graph and wherever it is cancelled, a run sends exactly one terminal
event, last, its stored status says the same, and nothing is left RUNNING."""

import json
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowtrux.engine.validation import validate_workflow
from flowtrux.runs.manager import RunSettings, open_run_manager
from flowtrux.store.executions import StoredEvent
from flowtrux.store.store import open_store
from tests.support import condition, delay, edge, fail, transform, trigger, workflow

STATUS_OF_TERMINAL = {"complete": "COMPLETED", "error": "FAILED", "cancelled": "CANCELLED"}


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


async def scenario(db: Path, doc: dict[str, Any], cancel: CancelPoint) -> None:
    async with (
        open_store(f"sqlite:///{db}") as store,
        open_run_manager(store, RunSettings()) as runs,
    ):
        space = await store.workspaces.ensure("Props")
        saved = await store.workflows.create(space.id, doc["name"], doc["nodes"], doc["edges"])
        run = await runs.start(saved, {}, started_by=None)
        feed = runs.subscribe(run.execution_id)
        how, when = cancel
        events: list[StoredEvent] = []
        with trio.fail_after(10):
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

        terminal = [event for event in events if event.terminal]
        assert len(terminal) == 1
        assert events[-1] is terminal[0]
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        started = [json.loads(e.data)["nodeId"] for e in events if e.name == "node_start"]
        completed = [json.loads(e.data)["nodeId"] for e in events if e.name == "node_complete"]
        assert sorted(started) == sorted(completed)  # each started node ended exactly once
        execution = await store.executions.get(run.execution_id)
        assert execution is not None
        assert execution.summary.status.value == STATUS_OF_TERMINAL[terminal[0].name]
        running = await store.db.read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM executions WHERE status = 'RUNNING'"
            ).fetchone()[0]
        )
        assert running == 0


async def _cancel_later(detach: Any, run: Any, seconds: float) -> None:
    await trio.sleep(seconds)
    detach(run)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=graphs(), cancel=cancel_points)
def test_one_terminal_event_matching_the_stored_status(
    tmp_path: Path, doc: dict[str, Any], cancel: CancelPoint
) -> None:
    trio.run(scenario, tmp_path / "props.db", doc, cancel)
