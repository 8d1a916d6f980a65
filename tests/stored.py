"""An execution as the store holds it, its JSON parsed, for tests to look into (the app sends
it on unparsed: `ExecutionStore.stored` and `logs_after`)."""

import json
from typing import Any

import attrs

from flowtrux.store.executions import ExecutionSummary
from flowtrux.store.store import Store


@attrs.frozen
class ExecutionDetail:
    summary: ExecutionSummary
    trigger_data: Any
    output: Any
    logs: list[Any]


async def stored_execution(store: Store, execution_id: str) -> ExecutionDetail | None:
    found = await store.executions.stored(execution_id)
    if found is None:
        return None
    logs: list[Any] = []
    after, complete = 0, False
    while not complete:
        page = await store.executions.logs_after(execution_id, after)
        logs += json.loads(b"[" + page.json + b"]")
        after, complete = page.last_position, page.complete
    trigger_data, output = json.loads(found.trigger_data), json.loads(found.output)
    return ExecutionDetail(found.summary, trigger_data, output, logs)
