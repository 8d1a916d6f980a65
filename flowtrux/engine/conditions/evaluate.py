"""Evaluating a parsed condition against a run's scope, recording the values it read.

Evaluation runs on the event loop every tenant shares, so its work is bounded: comparing lists
and objects counts each value it looks at, and past `MAX_STEPS` the condition errors. Values are
read as they are (a node's output is never changed), not copied.
"""

from __future__ import annotations

import itertools
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

MAX_STEPS: Final = 20_000  # values compared in one evaluation: some 40 ms here at most


@attrs.frozen
class Evaluation:
    """The `result` of a condition and the `variables` it read (path to its value, in the order
    first read)."""

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
    evaluator = _Evaluator(scope)
    result = bool(evaluator.value(condition.tree))
    return Evaluation(result=result, variables=evaluator.variables)


@attrs.define
class _Evaluator:
    scope: Mapping[str, Any]
    variables: dict[str, Any] = attrs.field(factory=dict)
    steps: int = 0

    def value(self, node: Expr) -> Any:
        """The JSON value of `node`; `not`, `and` and `or` give booleans, by Python truthiness."""
        match node:
            case Constant(value=value):
                return value
            case PathRef(path=path):
                return self.variables.setdefault(path, resolve(self.scope, path))
            case Not(operand=operand):
                return not self.value(operand)
            case And(operands=operands):
                return all(self.value(operand) for operand in operands)
            case Or(operands=operands):
                return any(self.value(operand) for operand in operands)
            case Compare(op=op, left=left, right=right):
                return self.compare(op, self.value(left), self.value(right))
            case _:
                assert_never(node)

    def compare(self, op: str, left: Any, right: Any) -> bool:
        match op:
            case "==":
                return self.equal(left, right)
            case "!=":
                return not self.equal(left, right)
            case "in":
                return self.contains(op, right, left)
            case "not in":
                return not self.contains(op, right, left)
        # One of the orderings: only number with number and string with string.
        if {json_type(left), json_type(right)} in ({"number"}, {"string"}):
            return _ORDERINGS[op](left, right)
        raise ConditionError(
            f"cannot compare {_describe(left)} with {_describe(right)} using '{op}'"
        )

    def equal(self, left: Any, right: Any) -> bool:
        """JSON equality: `true == 1` is false, `1 == 1.0` is true, lists and objects compare
        deeply."""
        self._step()
        if left is right:  # the same value read twice (JSON values hold no NaN)
            return True
        match json_type(left), json_type(right):
            case (kind, other) if kind != other:
                return False
            case ("list", _):
                return len(left) == len(right) and all(map(self.equal, left, right))
            case ("object", _):
                same_keys = left.keys() == right.keys()
                return same_keys and all(self.equal(left[k], right[k]) for k in left)
            case _:
                return bool(left == right)

    def contains(self, op: str, container: Any, item: Any) -> bool:
        kind = json_type(container)
        if kind == "list":
            return any(self.equal(item, element) for element in container)
        if kind in ("string", "object") and isinstance(item, str):
            return item in container
        needs = {
            "string": "only a string can be looked for in a string",
            "object": "only a string can be looked for in an object's keys",
        }.get(kind, "the right side must be a list, a string or an object")
        raise ConditionError(
            f"cannot use '{op}' with {_describe(item)} and {_describe(container)}: {needs}"
        )

    def _step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ConditionError(
                f"the condition compares more than {MAX_STEPS:,} values; compare smaller"
                " parts of them (a path that reads deeper)"
            )


def _describe(value: Any) -> str:
    """`string 'abc'`, `number 5`, `null`, `list [1,2]`: how error messages show a value."""
    kind = json_type(value)
    if kind == "null":
        return "null"
    if kind == "string":
        text = f"'{value[:41]}'"
    else:  # written out lazily: only what is shown
        chunks = json.JSONEncoder(separators=(",", ":"), default=str).iterencode(value)
        text = "".join(itertools.islice(chunks, 41))
    return f"{kind} {text if len(text) <= 40 else text[:39] + '…'}"
