"""`fail`: always errors, with its rendered `message`."""

from flowtrux.engine.errors import NodeError
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string", "minLength": 1}},
    "required": ["message"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    raise NodeError(str(ctx.render(ctx.config["message"])))


FAIL = NodeType("fail", CONFIG_SCHEMA, run)
