"""Conditions: small boolean expressions over a run's scope, parsed and evaluated without `eval`.

    trigger.data.priority >= 3 and not (agent-1.output.status in trigger.data.finished)

Operands are literals (`'text'`, `"text"`, `12`, `-2.5`, `true`, `false`, `null`), paths
(`trigger.data.x`, `node-id.output.items.0`) or a parenthesised expression. Comparisons are
`== != < <= > >= in` and `not in`; they do not chain. `not`, `and`, `or` bind in that order, use
the truthiness of JSON values and yield booleans. There is no arithmetic, so `-` inside a word
belongs to the word.
"""

from __future__ import annotations

import contextlib
import copy
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Literal, TypeAlias, assert_never

import attrs

from flowtrux.engine.errors import ConditionError, ConditionSyntaxError
from flowtrux.engine.paths import is_valid_path, json_type, resolve

# --- The parsed tree -----------------------------------------------------------------------


@attrs.frozen
class Constant:
    value: Any


@attrs.frozen
class PathRef:
    path: str


@attrs.frozen
class Not:
    operand: Expr


@attrs.frozen
class And:
    operands: tuple[Expr, ...]


@attrs.frozen
class Or:
    operands: tuple[Expr, ...]


@attrs.frozen
class Compare:
    op: str
    left: Expr
    right: Expr


Expr: TypeAlias = Constant | PathRef | Not | And | Or | Compare


@attrs.frozen
class Condition:
    """A parsed condition: its source `text` and its `tree`."""

    text: str
    tree: Expr

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the condition may read, in order of appearance, without repeats."""
        return tuple(dict.fromkeys(_paths_in(self.tree)))


@attrs.frozen
class Evaluation:
    """The `result` of a condition and the `variables` it read (path to a copy of its value, in
    the order first read)."""

    result: bool
    variables: dict[str, Any]


# --- Parsing -------------------------------------------------------------------------------

MAX_NESTING: Final = 50
_WORD: Final = re.compile(r"[A-Za-z0-9_.-]+")
_NUMBER: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_LITERAL_WORDS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_KEYWORDS: Final = frozenset({"and", "or", "not", "in"})
_SYMBOLS: Final = ("==", "!=", "<=", ">=", "<", ">", "(", ")")
_COMPARISON_OPS: Final = (*_SYMBOLS[:-2], "in", "not in")
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_HINTS: Final = {"=": " (use '==' to compare)", "!": " (use 'not' or '!=')", "&": " (use 'and')"}


@attrs.frozen
class _Token:
    kind: Literal["literal", "path", "keyword", "symbol", "end"]
    text: str
    column: int
    value: Any = None


def parse_condition(text: str) -> Condition:
    """Parse `text`. Raises ConditionSyntaxError saying what is wrong and at which column."""
    return Condition(text, _Parser(_tokenize(text)).parse())


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char, column = text[index], index + 1
        if char.isspace():
            index += 1
            continue
        if char in "'\"":
            value, index = _read_string(text, index)
            tokens.append(_Token("literal", text[column - 1 : index], column, value))
        elif symbol := next((s for s in _SYMBOLS if text.startswith(s, index)), None):
            tokens.append(_Token("symbol", symbol, column))
            index += len(symbol)
        elif word := _WORD.match(text, index):
            token = _word_token(word[0], column)
            if token.text == "in" and tokens and tokens[-1].text == "not":  # one operator
                token = _Token("keyword", "not in", tokens.pop().column)
            tokens.append(token)
            index = word.end()
        else:
            hint = _HINTS.get(char, "")
            raise ConditionSyntaxError(f"unexpected character {char!r} at column {column}{hint}")
    tokens.append(_Token("end", "end of condition", len(text) + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at `start`, and the index just past it."""
    chars: list[str] = []
    index = start + 1
    while index < len(text) and text[index] != text[start]:
        if text[index] == "\\" and index + 1 < len(text):
            escaped = text[index + 1]
            if escaped not in _ESCAPES:
                raise ConditionSyntaxError(
                    f"unknown escape '\\{escaped}' at column {index + 1}"
                    " (strings accept \\\\ \\' \\\" \\n and \\t)"
                )
            chars.append(_ESCAPES[escaped])
            index += 2
        else:
            chars.append(text[index])
            index += 1
    if index >= len(text):
        raise ConditionSyntaxError(f"unterminated string starting at column {start + 1}")
    return "".join(chars), index + 1


def _word_token(word: str, column: int) -> _Token:
    if _NUMBER.fullmatch(word):
        try:
            number = float(word) if "." in word else int(word)
        except ValueError:  # more digits than int() accepts
            raise ConditionSyntaxError(f"number too long at column {column}") from None
        return _Token("literal", word, column, number)
    if word in _LITERAL_WORDS:
        return _Token("literal", word, column, _LITERAL_WORDS[word])
    if word in _KEYWORDS:
        return _Token("keyword", word, column)
    if is_valid_path(word):
        return _Token("path", word, column)
    hint = (
        f"did you mean '{word.lower()}'?"
        if word.lower() in _KEYWORDS | _LITERAL_WORDS.keys()
        else "paths look like trigger.data.x or node-id.output.x"
    )
    raise ConditionSyntaxError(f"unknown word '{word}' at column {column} ({hint})")


class _Parser:
    """Recursive descent over the tokens, one method per grammar rule."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0
        self._depth = 0

    def parse(self) -> Expr:
        if self._peek().kind == "end":
            raise ConditionSyntaxError(
                "expected an expression at column 1 (the condition is empty)"
            )
        tree = self._or()
        if (token := self._peek()).kind != "end":
            raise _unexpected(token)
        return tree

    def _or(self) -> Expr:
        operands = [self._and()]
        while self._at("or"):
            self._index += 1
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Expr:
        operands = [self._not()]
        while self._at("and"):
            self._index += 1
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _not(self) -> Expr:
        if not self._at("not"):
            return self._comparison()
        with self._nested(self._take()):
            return Not(self._not())

    def _comparison(self) -> Expr:
        left = self._operand()
        if (op := self._take_comparison_op()) is None:
            return left
        right = self._operand()
        if self._at_comparison_op():
            token = self._peek()
            raise ConditionSyntaxError(
                f"comparisons cannot be chained: '{token.text}' at column {token.column}"
                f" follows '{op}' (join two comparisons with 'and')"
            )
        return Compare(op, left, right)

    def _operand(self) -> Expr:
        token = self._peek()
        if token.kind == "literal":
            self._index += 1
            return Constant(token.value)
        if token.kind == "path":
            self._index += 1
            return PathRef(token.text)
        if self._at("("):
            with self._nested(self._take()):
                inner = self._or()
            if not self._at(")"):
                closing = self._peek()
                found = "" if closing.kind == "end" else f"{_unexpected(closing)}: "
                raise ConditionSyntaxError(
                    f"{found}missing ')' to close '(' at column {token.column}"
                )
            self._index += 1
            return inner
        if token.kind == "end":
            after = self._tokens[self._index - 1]
            raise ConditionSyntaxError(
                f"expected an expression after '{after.text}' at column {after.column}"
            )
        raise _unexpected(token)

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _take(self) -> _Token:
        token = self._peek()
        self._index += 1
        return token

    def _at(self, text: str) -> bool:
        """Whether the next token is this keyword or symbol."""
        token = self._peek()
        return token.kind in ("keyword", "symbol") and token.text == text

    def _at_comparison_op(self) -> bool:
        return any(map(self._at, _COMPARISON_OPS))

    def _take_comparison_op(self) -> str | None:
        return self._take().text if self._at_comparison_op() else None

    @contextlib.contextmanager
    def _nested(self, opening: _Token) -> Iterator[None]:
        if self._depth >= MAX_NESTING:
            raise ConditionSyntaxError(
                f"'{opening.text}' at column {opening.column} nests deeper than"
                f" {MAX_NESTING} levels of parentheses and 'not'"
            )
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


def _unexpected(token: _Token) -> ConditionSyntaxError:
    return ConditionSyntaxError(f"unexpected '{token.text}' at column {token.column}")


def _paths_in(node: Expr) -> Iterator[str]:
    match node:
        case PathRef(path=path):
            yield path
        case Not(operand=operand):
            yield from _paths_in(operand)
        case And(operands=operands) | Or(operands=operands):
            for operand in operands:
                yield from _paths_in(operand)
        case Compare(left=left, right=right):
            yield from _paths_in(left)
            yield from _paths_in(right)


# --- Evaluation ----------------------------------------------------------------------------

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
