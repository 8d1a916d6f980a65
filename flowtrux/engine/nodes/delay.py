"""`delay`: waits `ms` milliseconds (a number, or a template that renders to one)."""

import trio

from flowtrux.engine.errors import NodeError
from flowtrux.engine.limits import MAX_MS
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        # A number of milliseconds, or a template that renders to one.
        "ms": {"type": ["number", "string"], "minimum": 0, "maximum": MAX_MS, "pattern": "{{"},
    },
    "required": ["ms"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    ms = ctx.render(ctx.config["ms"])
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
        raise NodeError(f"delay 'ms' must be a number of milliseconds >= 0, got {ms!r}")
    if ms > MAX_MS:
        raise NodeError(f"delay 'ms' must be at most {MAX_MS} (a day), got {ms!r}")
    await trio.sleep(ms / 1000)
    return NodeResult({"waitedMs": ms})


DELAY = NodeType("delay", CONFIG_SCHEMA, run)
