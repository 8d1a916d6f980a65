"""A run's answer and its nodes' logs, for tests of nodes that reach out."""

from collections.abc import Callable
from typing import Any

import httpx
import trio


async def execute(owner: httpx.AsyncClient, workflow_id: str, body: Any = None) -> dict[str, Any]:
    """The answer of `POST /execute`: the run, ended."""
    answer = await owner.post(f"/api/workflows/{workflow_id}/execute", json=body or {})
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def until(condition: Callable[[], bool], within_s: float = 5) -> None:
    """Wait (`within_s` at most) until `condition()` holds, as a remote server's record
    changes."""
    with trio.fail_after(within_s):
        while True:
            if condition():
                return
            await trio.sleep(0.005)


def log_of(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(log for log in run["logs"] if log["nodeId"] == node_id)
    return found
