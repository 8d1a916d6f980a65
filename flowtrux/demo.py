"""The demo: a user, a workspace and a workflow that runs with no network.

The workflow calls a customer API with an `http` node; the demo serves that API itself, on
loopback (`customer_api`), and opens that one service (address and port) to its workflows.
"""

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flowtrux.access import Role
from flowtrux.passwords import hash_password
from flowtrux.store.store import Store
from flowtrux.store.workflows import Workflow

DEMO_EMAIL = "demo@flowtrux.local"
DEMO_PASSWORD = "flowtrux-demo"
DEMO_WORKSPACE = "Demo"
DEMO_WORKFLOW = "Ticket triage (demo)"


def nodes(customer_api: str) -> list[dict[str, Any]]:
    """The workflow's nodes, its http node calling the demo's customer API at `customer_api`."""
    lookup = {
        "id": "customer",
        "type": "http",
        "name": "Look up customer",
        "config": {"url": f"{customer_api}/customers/{{{{trigger.data.customer}}}}"},
        "retry": {"maxAttempts": 3, "backoffMs": 200},
    }
    return [*NODES[:2], lookup, *NODES[2:]]


NODES: list[dict[str, Any]] = [
    {
        "id": "trigger",
        "type": "trigger",
        "name": "Ticket received",
        "config": {
            "mode": "manual",
            "staticData": {"priority": "normal", "tier": "pro", "customer": "c-42"},
        },
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
        "config": {
            "output": {
                "urgent": "{{urgent.output}}",
                "handled": True,
                "customer": "{{customer.output.body.name}}",
            }
        },
    },
]

EDGES: list[dict[str, Any]] = [
    {"source": "trigger", "target": "enrich"},
    {"source": "enrich", "target": "customer"},
    {"source": "customer", "target": "think"},
    {"source": "think", "target": "urgent"},
    {"source": "urgent", "target": "page", "branch": "true"},
    {"source": "urgent", "target": "queue", "branch": "false"},
    {"source": "page", "target": "settle"},
    {"source": "queue", "target": "settle"},
    {"source": "settle", "target": "reply"},
]


async def seed(store: Store, customer_api: str) -> Workflow:
    """Create (or find) the demo user, workspace and workflow; the workflow calls the customer
    API at `customer_api`."""
    workspace = await store.workspaces.ensure(DEMO_WORKSPACE)
    found = await store.users.find_by_email(DEMO_EMAIL)
    if found is None:
        user = await store.users.create(DEMO_EMAIL, "Demo", await hash_password(DEMO_PASSWORD))
    else:
        user = found[0]
    await store.workspaces.set_role(workspace.id, user.id, Role.OWNER)
    for summary in await store.workflows.in_workspace(workspace.id):
        if summary.name == DEMO_WORKFLOW:  # the API's port is new each time
            workflow = await store.workflows.update(
                summary.id, DEMO_WORKFLOW, nodes(customer_api), EDGES
            )
            assert workflow is not None
            return workflow
    return await store.workflows.create(workspace.id, DEMO_WORKFLOW, nodes(customer_api), EDGES)


CUSTOMERS = {
    "c-42": {"id": "c-42", "name": "Ada Lovelace", "plan": "pro"},
    "c-7": {"id": "c-7", "name": "Grace Hopper", "plan": "free"},
}


async def _customer(request: Request) -> JSONResponse:
    found = CUSTOMERS.get(request.path_params["customer_id"])
    if found is None:
        return JSONResponse({"error": "no such customer"}, status_code=404)
    return JSONResponse(found)


customer_api = Starlette(routes=[Route("/customers/{customer_id}", _customer)])
"""The demo's customer API, served on loopback beside FlowTrux."""
