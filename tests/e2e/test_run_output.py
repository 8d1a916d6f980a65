"""A run's output follows one rule, never timing: the `response` node's when one ran, else the one
sink's that ran, else the outputs of the sinks that ran keyed by node id."""

import httpx

from tests.e2e.conftest import CreateWorkflow
from tests.support import condition, edge, response, transform, trigger, workflow

PARALLEL = workflow(
    [trigger(), transform("a", "A"), transform("b", "B")],
    [edge("trigger", "a"), edge("trigger", "b")],
)
RESPONSE_SKIPPED = workflow(
    [trigger(), condition("check", "trigger.data.go == true"), response("reply", "went")],
    [edge("trigger", "check"), edge("check", "reply", "true")],
)


async def outputs(
    owner: httpx.AsyncClient, workflow_id: str, body: dict[str, object], runs: int
) -> list[object]:
    found = []
    for _ in range(runs):
        answer = await owner.post(f"/api/workflows/{workflow_id}/execute", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
        found.append(answer.json()["output"])
    return found


async def test_parallel_sinks_give_the_same_output_every_time(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(PARALLEL)
    assert await outputs(owner, workflow_id, {}, 30) == [{"a": "A", "b": "B"}] * 30


async def test_a_skipped_response_leaves_the_sinks_that_ran_not_a_condition(
    owner: httpx.AsyncClient, create_workflow: CreateWorkflow
) -> None:
    workflow_id = await create_workflow(RESPONSE_SKIPPED)
    assert await outputs(owner, workflow_id, {"go": True}, 1) == ["went"]
    assert await outputs(owner, workflow_id, {"go": False}, 1) == [{}]
    history = await owner.get("/api/executions", params={"workflowId": workflow_id})
    latest = history.json()["executions"][0]["id"]
    detail = (await owner.get(f"/api/executions/{latest}")).json()["execution"]
    assert detail["output"] == {}
    assert [(log["nodeId"], log["status"]) for log in detail["logs"]] == [
        ("trigger", "success"),
        ("check", "success"),
        ("reply", "skipped"),
    ]
