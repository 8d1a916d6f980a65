"""Parsing a condition's text into its tree: a tokenizer and a recursive descent parser.

Every syntax error says what is wrong and at which column.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from typing import Any, Final, Literal

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
from flowtrux.engine.errors import ConditionSyntaxError
from flowtrux.engine.paths import is_valid_path

MAX_NESTING: Final = 50
CACHED_CONDITIONS: Final = 256
_WORD: Final = re.compile(r"[A-Za-z0-9_.-]+")
_NUMBER: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_LITERAL_WORDS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_KEYWORDS: Final = frozenset({"and", "or", "not", "in"})
_SYMBOLS: Final = ("==", "!=", "<=", ">=", "<", ">", "(", ")")
_SYMBOL: Final = re.compile("|".join(map(re.escape, _SYMBOLS)))  # two characters before one
_COMPARISON_OPS: Final = frozenset({*_SYMBOLS[:-2], "in", "not in"})
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_HINTS: Final = {"=": " (use '==' to compare)", "!": " (use 'not' or '!=')", "&": " (use 'and')"}


@attrs.frozen
class _Token:
    kind: Literal["literal", "path", "keyword", "symbol", "end"]
    text: str
    column: int
    value: Any = None


@functools.lru_cache(maxsize=CACHED_CONDITIONS)
def parse_condition(text: str) -> Condition:
    """Parse `text`. Raises ConditionSyntaxError saying what is wrong and at which column.

    The last `CACHED_CONDITIONS` conditions parsed are kept (a Condition is immutable), so the
    runs of a workflow parse each of its conditions once; errors are not kept.
    """
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
        elif symbol := _SYMBOL.match(text, index):
            tokens.append(_Token("symbol", symbol[0], column))
            index = symbol.end()
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
        token = self._peek()
        return token.kind in ("keyword", "symbol") and token.text in _COMPARISON_OPS

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
