"""Evaluating a parsed condition against a run's scope, recording the values it read."""

from __future__ import annotations

import copy
import json
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, assert_never

import attrs

from flowtrux.engine.conditions.tree import (
    And,
    Compare,
    Condition,
    Constant,
    Expr,
    Not,
    Or,
    PathRef,
)
from flowtrux.engine.errors import ConditionError
from flowtrux.engine.paths import json_type, resolve


@attrs.frozen
class Evaluation:
    """The `result` of a condition and the `variables` it read (path to a copy of its value, in
    the order first read)."""

    result: bool
    variables: dict[str, Any]


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(condition: Condition, scope: Mapping[str, Any]) -> Evaluation:
    """Evaluate `condition` against `scope`, reading only the paths it needs.

    Raises MissingPath when a path it reads has no value, and ConditionError when a comparison
    does not apply to the values read (e.g. `'abc' < 5`, or `in` with a number on the right).
    """
    variables: dict[str, Any] = {}
    result = bool(_value(condition.tree, scope, variables))
    return Evaluation(result=result, variables=variables)


def _value(node: Expr, scope: Mapping[str, Any], variables: dict[str, Any]) -> Any:
    """The JSON value of `node`; `not`, `and` and `or` give booleans, by Python truthiness."""
    match node:
        case Constant(value=value):
            return value
        case PathRef(path=path):
            value = resolve(scope, path)
            variables.setdefault(path, copy.deepcopy(value))  # a snapshot for the run's log
            return value
        case Not(operand=operand):
            return not _value(operand, scope, variables)
        case And(operands=operands):
            return all(_value(operand, scope, variables) for operand in operands)
        case Or(operands=operands):
            return any(_value(operand, scope, variables) for operand in operands)
        case Compare(op=op, left=left, right=right):
            return _compare(op, _value(left, scope, variables), _value(right, scope, variables))
        case _:
            assert_never(node)


def _compare(op: str, left: Any, right: Any) -> bool:
    match op:
        case "==":
            return _equal(left, right)
        case "!=":
            return not _equal(left, right)
        case "in":
            return _contains(op, right, left)
        case "not in":
            return not _contains(op, right, left)
    # One of the orderings: only number with number and string with string.
    if {json_type(left), json_type(right)} in ({"number"}, {"string"}):
        return _ORDERINGS[op](left, right)
    raise ConditionError(f"cannot compare {_describe(left)} with {_describe(right)} using '{op}'")


def _equal(left: Any, right: Any) -> bool:
    """JSON equality: `true == 1` is false, `1 == 1.0` is true, lists and objects compare deeply."""
    match json_type(left), json_type(right):
        case (kind, other) if kind != other:
            return False
        case ("list", _):
            return len(left) == len(right) and all(map(_equal, left, right))
        case ("object", _):
            return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
        case _:
            return bool(left == right)


def _contains(op: str, container: Any, item: Any) -> bool:
    kind = json_type(container)
    if kind == "list":
        return any(_equal(item, element) for element in container)
    if kind in ("string", "object") and isinstance(item, str):
        return item in container
    needs = {
        "string": "only a string can be looked for in a string",
        "object": "only a string can be looked for in an object's keys",
    }.get(kind, "the right side must be a list, a string or an object")
    raise ConditionError(
        f"cannot use '{op}' with {_describe(item)} and {_describe(container)}: {needs}"
    )


def _describe(value: Any) -> str:
    """`string 'abc'`, `number 5`, `null`, `list [1,2]`: how error messages show a value."""
    kind = json_type(value)
    if kind == "null":
        return "null"
    text = (
        f"'{value}'" if kind == "string" else json.dumps(value, separators=(",", ":"), default=str)
    )
    return f"{kind} {text if len(text) <= 40 else text[:39] + '…'}"
