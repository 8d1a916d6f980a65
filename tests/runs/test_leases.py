"""Runs left RUNNING by a process that stopped are found and ended INTERRUPTED."""

import json

from flowtrux.engine.states import RunStatus
from flowtrux.runs.manager import RunSettings, open_run_manager
from flowtrux.runs.outcome import INTERRUPTED
from flowtrux.store.executions import NewEvent
from flowtrux.store.store import Store
from tests.runs.conftest import SaveWorkflow, new_execution


async def test_runs_of_a_stopped_process_end_interrupted(
    store: Store, save_workflow: SaveWorkflow
) -> None:
    await store.processes.renew("proc-alive")
    await new_execution(store, save_workflow, "exec-orphan", process_id="proc-gone")
    await new_execution(store, save_workflow, "exec-alive", process_id="proc-alive")
    await store.executions.append([NewEvent("exec-orphan", 1, "start", {})])

    async with open_run_manager(store, RunSettings()):
        pass  # the lease is taken, and orphans recovered, on the way in

    orphan = await store.executions.get("exec-orphan")
    assert orphan is not None
    assert orphan.summary.status is RunStatus.INTERRUPTED
    assert orphan.summary.error == INTERRUPTED
    events = (await store.executions.events_after("exec-orphan", 0)).events
    assert [(event.seq, event.name) for event in events] == [(1, "start"), (2, "error")]
    assert json.loads(events[-1].data)["error"] == INTERRUPTED
    alive = await store.executions.get("exec-alive")
    assert alive is not None
    assert alive.summary.status is RunStatus.RUNNING  # its process still holds its lease
