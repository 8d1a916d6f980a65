"""`condition`: evaluates its expression to true or false; edges with the other branch go dead."""

from collections.abc import Iterable, Mapping
from typing import Any

from flowtrux.engine.conditions import evaluate, parse_condition
from flowtrux.engine.errors import ConditionSyntaxError
from flowtrux.engine.limits import MAX_CONDITION_BYTES
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType
from flowtrux.engine.paths import check_root

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {"condition": {"type": "string", "minLength": 1}},
    "required": ["condition"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    text = ctx.config["condition"]
    evaluation = evaluate(parse_condition(text), ctx.scope)
    return NodeResult(evaluation.result, {"condition": text, "variables": evaluation.variables})


def paths(config: Mapping[str, Any]) -> Iterable[str]:
    try:
        return parse_condition(config["condition"]).paths
    except ConditionSyntaxError:
        return ()  # reported by `problems`


def problems(config: Mapping[str, Any]) -> Iterable[str]:
    text = config["condition"]
    if (size := len(text.encode())) > MAX_CONDITION_BYTES:
        return [f"condition is {size} bytes long (UTF-8), over the limit of {MAX_CONDITION_BYTES}"]
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError as exc:
        return [f"condition does not parse: {exc}"]
    return [f"condition: {problem}" for path in condition.paths if (problem := check_root(path))]


CONDITION = NodeType("condition", CONFIG_SCHEMA, run, paths=paths, problems=problems)
