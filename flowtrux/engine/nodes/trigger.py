"""`trigger`: where every run starts; its output is the body merged over `staticData`."""

from collections.abc import Mapping
from typing import Any

from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["manual", "webhook"]},
        "staticData": {"type": "object"},
        "continueOnDisconnect": {"type": "boolean"},
        "webhookResponse": {"enum": ["minimal", "full", "lastNode"]},
        "callbackUrl": {"type": "string", "minLength": 1, "maxLength": 2048},
    },
    "additionalProperties": False,
}


def trigger_data(static_data: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """What `{{trigger.data}}` reads: the request body merged over `staticData` (body wins)."""
    return {**static_data, **body}


async def run(ctx: NodeContext) -> NodeResult:
    return NodeResult(trigger_data(ctx.inputs["staticData"], ctx.inputs["body"]))


TRIGGER = NodeType(
    "trigger", CONFIG_SCHEMA, run, paths=lambda config: (), problems=lambda config: ()
)
