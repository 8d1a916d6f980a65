from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from flowtrux.runs.feed import Feed
from flowtrux.runs.manager import RunManager, RunSettings, open_run_manager
from flowtrux.store.executions import NewExecution, StoredEvent
from flowtrux.store.store import Store, open_store
from flowtrux.store.workflows import Workflow
from flowtrux.timestamps import utc_now
from tests.support import chain, trigger

SaveWorkflow = Callable[[dict[str, Any]], Awaitable[Workflow]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path}/runs.db") as store:
        yield store


@pytest.fixture
def run_settings() -> RunSettings:
    return RunSettings()


@pytest.fixture
async def manager(store: Store, run_settings: RunSettings) -> AsyncIterator[RunManager]:
    async with open_run_manager(store, run_settings) as manager:
        yield manager


@pytest.fixture
def save_workflow(store: Store) -> SaveWorkflow:
    """Store a workflow document (unvalidated, as a test wants it) in a workspace."""

    async def save(doc: dict[str, Any]) -> Workflow:
        workspace = await store.workspaces.ensure("Runs")
        return await store.workflows.create(workspace.id, doc["name"], doc["nodes"], doc["edges"])

    return save


async def collect(feed: Feed) -> list[StoredEvent]:
    """Every event `feed` gives, up to its end (within 10 s)."""
    events = []
    with trio.fail_after(10):
        while True:
            try:
                events.append(await feed.receive())
            except trio.EndOfChannel:
                return events


async def new_execution(
    store: Store, save_workflow: SaveWorkflow, execution_id: str, process_id: str = "proc-test"
) -> None:
    """A RUNNING execution row, as `RunManager.start` writes it, for process `process_id`."""
    workflow = await save_workflow(chain(trigger()))
    new = NewExecution(
        execution_id, workflow.id, workflow.workspace_id, workflow.name, "manual", {}, None,
        process_id, utc_now(),
    )  # fmt: skip
    await store.executions.create(new)
