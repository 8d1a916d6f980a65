"""A parsed condition: its tree of constants, paths, `not`, `and`, `or` and comparisons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import attrs


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
