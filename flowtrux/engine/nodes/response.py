"""`response`: renders the run's output; when a workflow has one, its output is the run's."""

from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "output": {},
        "status": {"type": "integer", "minimum": 200, "maximum": 599},  # a final answer's
    },
    "required": ["output"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    return NodeResult(ctx.render(ctx.config["output"]))


RESPONSE = NodeType("response", CONFIG_SCHEMA, run)
