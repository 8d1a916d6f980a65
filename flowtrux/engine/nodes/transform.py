"""`transform`: renders its `output` JSON with templates."""

from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {"output": {}},
    "required": ["output"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    return NodeResult(ctx.render(ctx.config["output"]))


TRANSFORM = NodeType("transform", CONFIG_SCHEMA, run)
