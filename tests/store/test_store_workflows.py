"""Stored workflows keep the document exactly as submitted."""

from typing import Any

import trio

from flowtrux.store.store import Store
from flowtrux.store.workflows import WorkflowSummary
from flowtrux.store.workspaces import Workspace
from flowtrux.timestamps import to_iso

NODES: list[Any] = [
    {
        "id": "trigger",
        "type": "trigger",
        "name": "Start",
        "config": {"mode": "manual"},
        "position": {"x": 12.5, "y": -40},
        "ui": {"collapsed": True, "color": None, "tags": ["a", "b"]},
    },
    {
        "id": "shape",
        "type": "transform",
        "name": "Façade ✓ 日本",
        "config": {"output": {"n": "{{trigger.data.n}}", "big": 2**53, "ratio": 0.1}},
        "position": {"x": 300, "y": 0},
    },
]
EDGES: list[Any] = [
    {"source": "trigger", "target": "shape", "id": "e1", "animated": False, "label": ""},
]


async def test_create_then_get_round_trips_the_document(store: Store, workspace: Workspace) -> None:
    created = await store.workflows.create(workspace.id, "Ingest", NODES, EDGES)
    fetched = await store.workflows.get(created.id)

    assert fetched is not None
    assert created.id.startswith("wf-")
    assert (fetched.id, fetched.workspace_id, fetched.name) == (created.id, workspace.id, "Ingest")
    assert fetched.nodes == NODES
    assert fetched.edges == EDGES
    assert to_iso(fetched.created_at) == to_iso(created.created_at)
    assert fetched.created_at == fetched.updated_at


async def test_get_of_a_missing_workflow_is_none(store: Store) -> None:
    assert await store.workflows.get("wf-missing") is None


async def test_update_replaces_the_document_and_keeps_created_at(
    store: Store, workspace: Workspace
) -> None:
    created = await store.workflows.create(workspace.id, "Ingest", NODES, EDGES)
    await trio.sleep(0.01)  # timestamps have millisecond resolution
    new_nodes = [{**NODES[0], "position": {"x": 0, "y": 0}, "note": "moved"}]

    updated = await store.workflows.update(created.id, "Ingest v2", new_nodes, [])

    assert updated is not None
    assert updated == await store.workflows.get(created.id)
    assert (updated.name, updated.nodes, updated.edges) == ("Ingest v2", new_nodes, [])
    assert to_iso(updated.created_at) == to_iso(created.created_at)
    assert updated.updated_at > updated.created_at


async def test_update_of_a_missing_workflow_returns_none_and_creates_nothing(
    store: Store, workspace: Workspace
) -> None:
    assert await store.workflows.update("wf-missing", "Ghost", NODES, EDGES) is None
    assert await store.workflows.get("wf-missing") is None
    assert await store.workflows.in_workspace(workspace.id) == []


async def test_delete_removes_the_workflow(store: Store, workspace: Workspace) -> None:
    kept = await store.workflows.create(workspace.id, "Kept", NODES, EDGES)
    gone = await store.workflows.create(workspace.id, "Gone", NODES, EDGES)

    await store.workflows.delete(gone.id)
    await store.workflows.delete("wf-missing")  # no error

    assert await store.workflows.get(gone.id) is None
    assert await store.workflows.get(kept.id) is not None


async def test_in_workspace_lists_newest_updated_first(store: Store, workspace: Workspace) -> None:
    other = await store.workspaces.ensure("Other")
    names = ["first", "second", "third"]
    ids = {}
    for name in names:
        ids[name] = (await store.workflows.create(workspace.id, name, NODES, EDGES)).id
        await trio.sleep(0.01)
    await store.workflows.create(other.id, "elsewhere", NODES, EDGES)

    listed = await store.workflows.in_workspace(workspace.id)
    assert [summary.name for summary in listed] == ["third", "second", "first"]
    assert all(isinstance(summary, WorkflowSummary) for summary in listed)
    assert {summary.workspace_id for summary in listed} == {workspace.id}

    updated = await store.workflows.update(ids["first"], "first", NODES, [])
    assert updated is not None

    listed = await store.workflows.in_workspace(workspace.id)
    assert [summary.name for summary in listed] == ["first", "third", "second"]
    assert listed[0].updated_at == updated.updated_at
