"""`trigger`: where every run starts; its output is the body merged over `staticData`."""

from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["manual", "webhook"]},
        "staticData": {"type": "object"},
        "continueOnDisconnect": {"type": "boolean"},
        "webhookResponse": {"enum": ["minimal", "full", "lastNode"]},
    },
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    return NodeResult({**ctx.inputs["staticData"], **ctx.inputs["body"]})


TRIGGER = NodeType(
    "trigger", CONFIG_SCHEMA, run, paths=lambda config: (), problems=lambda config: ()
)
