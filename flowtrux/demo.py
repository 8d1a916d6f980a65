"""The demo: a user, a workspace and a workflow that runs with no network."""

from typing import Any

from flowtrux.access import Role
from flowtrux.passwords import hash_password
from flowtrux.store.store import Store
from flowtrux.store.workflows import Workflow

DEMO_EMAIL = "demo@flowtrux.local"
DEMO_PASSWORD = "flowtrux-demo"
DEMO_WORKSPACE = "Demo"
DEMO_WORKFLOW = "Ticket triage (demo)"

NODES: list[dict[str, Any]] = [
    {
        "id": "trigger",
        "type": "trigger",
        "name": "Ticket received",
        "config": {"mode": "manual", "staticData": {"priority": "normal", "tier": "pro"}},
    },
    {
        "id": "enrich",
        "type": "transform",
        "name": "Enrich ticket",
        "config": {
            "output": {
                "summary": "Ticket from {{trigger.data.tier}} customer",
                "priority": "{{trigger.data.priority}}",
            }
        },
    },
    {"id": "think", "type": "delay", "name": "Think it over", "config": {"ms": 1500}},
    {
        "id": "urgent",
        "type": "condition",
        "name": "Urgent?",
        "config": {"condition": "enrich.output.priority == 'high' and trigger.data.tier != 'free'"},
    },
    {
        "id": "page",
        "type": "transform",
        "name": "Page on-call",
        "config": {"output": {"queue": "on-call", "summary": "{{enrich.output.summary}}"}},
    },
    {
        "id": "queue",
        "type": "transform",
        "name": "Queue it",
        "config": {"output": {"queue": "normal", "summary": "{{enrich.output.summary}}"}},
    },
    {"id": "settle", "type": "delay", "name": "Settle", "config": {"ms": 500}},
    {
        "id": "reply",
        "type": "response",
        "name": "Reply",
        "config": {"output": {"urgent": "{{urgent.output}}", "handled": True}},
    },
]

EDGES: list[dict[str, Any]] = [
    {"source": "trigger", "target": "enrich"},
    {"source": "enrich", "target": "think"},
    {"source": "think", "target": "urgent"},
    {"source": "urgent", "target": "page", "branch": "true"},
    {"source": "urgent", "target": "queue", "branch": "false"},
    {"source": "page", "target": "settle"},
    {"source": "queue", "target": "settle"},
    {"source": "settle", "target": "reply"},
]


async def seed(store: Store) -> Workflow:
    """Create (or find) the demo user, workspace and workflow."""
    workspace = await store.workspaces.ensure(DEMO_WORKSPACE)
    found = await store.users.find_by_email(DEMO_EMAIL)
    if found is None:
        user = await store.users.create(DEMO_EMAIL, "Demo", await hash_password(DEMO_PASSWORD))
    else:
        user = found[0]
    await store.workspaces.set_role(workspace.id, user.id, Role.OWNER)
    for summary in await store.workflows.in_workspace(workspace.id):
        if summary.name == DEMO_WORKFLOW:
            workflow = await store.workflows.get(summary.id)
            assert workflow is not None
            return workflow
    return await store.workflows.create(workspace.id, DEMO_WORKFLOW, NODES, EDGES)
