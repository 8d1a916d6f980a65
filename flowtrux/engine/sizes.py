"""The size of what a node outputs and logs, as the store will write it, measured without
writing it, and without holding up the event loop.

Outputs share structure: a template that is exactly `{{a.output}}` puts `a`'s output itself into
the new value, so a chain of `["{{prev.output}}", "{{prev.output}}"]` doubles its JSON at every
node while its objects stay few. A run's values are never changed once output, so each is
measured once in the run (`Sizes` remembers it, and holds it so that its id stays its own), and a
walk stops as soon as the total is over the limit: measuring costs about as much as the objects
there are, never as much as the text they would make. A walk that would take more than a few
milliseconds (a body of 500,000 numbers) goes on in a worker thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import attrs
import trio

from flowtrux.engine.errors import NodeError
from flowtrux.strict_json import MAX_DEPTH

INLINE_STEPS: Final = 20_000  # values looked at on the event loop before a thread takes over
MEASURED_ONCE: Final = 1024  # characters from which a string's size is remembered
_encode_string: Final = json.encoder.encode_basestring

Container = str | Mapping[str, Any] | list[Any] | tuple[Any, ...]


class OutputTooLarge(NodeError):
    def __init__(self, limit: int, what: str = "the output") -> None:
        super().__init__(
            f"{what} is larger than {limit:,} bytes of JSON, the limit set by"
            " FLOWTRUX_MAX_OUTPUT_BYTES",
            retryable=False,
        )


class OutputNotStorable(NodeError):
    """A value JSON cannot carry, or one nested too deep for every reader."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class _Deferred(Exception):
    """The walk is longer than the event loop should take: go on in a thread."""


class _Known(NamedTuple):  # a tuple: one is made for each value a node outputs or logs
    value: object  # held: while it lives, its id is its own
    size: int
    height: int  # levels of lists and objects, itself included


@attrs.define(eq=False)
class Sizes:
    """The sizes of one run's values, against the run's limit."""

    limit: int
    known: dict[int, _Known] = attrs.field(factory=dict, init=False)  # by id, measured once

    async def check(self, value: Any, what: str = "the output") -> int:
        """The size of `value` as compact UTF-8 JSON. Raises OutputTooLarge (saying `what` is
        too large) when it is over the limit, OutputNotStorable when it is nested deeper than
        MAX_DEPTH or holds what JSON cannot. A long walk goes on in a worker thread.
        Checkpoints only then: a short walk is no longer than the node's own work, and the
        scheduler checkpoints before each node (three checkpoints a node here cost a sixth of
        a transform node in the engine)."""
        try:
            return _Walk(self, what, INLINE_STEPS).total(value)
        except _Deferred:  # a cancelled run does not wait for the walk: it is left to end
            return await trio.to_thread.run_sync(
                self.check_now, value, what, abandon_on_cancel=True
            )

    def check_now(self, value: Any, what: str = "the output") -> int:
        """`check`, all of it where it is called."""
        return _Walk(self, what).total(value)

    def budget(self) -> Budget:
        return Budget(self)


class Budget:
    """What a value being built may take, in bytes of JSON: spending past the limit raises
    OutputTooLarge, before more is built. A value shared whole (not copied) is measured."""

    def __init__(self, sizes: Sizes) -> None:
        self._walk = _Walk(sizes, "the output")
        self.spent = 0

    def spend(self, size: int) -> None:
        self.spent += size
        self._walk.check(self.spent)

    def share(self, value: Any) -> None:
        self.spend(self._walk.size(value, 0))


class _Walk:
    def __init__(self, sizes: Sizes, what: str, max_steps: float = math.inf) -> None:
        self.sizes = sizes
        self.what = what
        self.steps_left = max_steps

    def total(self, value: Any) -> int:
        size = self.size(value, 0)
        self.check(size)
        return size

    def size(self, value: Any, depth: int) -> int:
        return self._sized(value, depth)[0]

    def _sized(self, value: Any, depth: int) -> tuple[int, int]:
        """Bytes of JSON and levels of nesting; the common types first, by exact type."""
        kind = type(value)
        if kind is str and len(value) < MEASURED_ONCE:
            return _string_size(value), 0
        if not value and kind in (dict, list, tuple):  # nothing to remember: {} or []
            if depth >= MAX_DEPTH:
                raise OutputNotStorable(f"{self.what} is nested deeper than {MAX_DEPTH} levels")
            return 2, 1
        if kind in (str, dict, list, tuple) or isinstance(value, Mapping):
            known = self.sizes.known.get(id(value))
            if known is None:
                known = self.sizes.known[id(value)] = self._measure(value, depth)
            if depth + known.height > MAX_DEPTH:
                raise OutputNotStorable(f"{self.what} is nested deeper than {MAX_DEPTH} levels")
            return known.size, known.height
        if kind is int:
            return len(str(value)), 0
        if kind is bool:
            return (4 if value else 5), 0
        if value is None:
            return 4, 0
        if kind is float:
            if not math.isfinite(value):
                raise OutputNotStorable(f"{self.what} holds {value}, which JSON does not have")
            return len(repr(value)), 0
        raise OutputNotStorable(f"{self.what} holds a {kind.__name__}, not JSON")

    def _measure(self, value: Container, depth: int) -> _Known:
        if isinstance(value, str):
            return _Known(value, _string_size(value), 0)
        if depth >= MAX_DEPTH:
            raise OutputNotStorable(f"{self.what} is nested deeper than {MAX_DEPTH} levels")
        total, height = 1 + max(len(value), 1), 0  # brackets and commas
        keys = isinstance(value, Mapping)
        members = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in members:
            self.steps_left -= 1
            if self.steps_left < 0:
                raise _Deferred
            size, item_height = self._sized(item, depth + 1)
            total += size + (_string_size(str(key)) + 1 if keys else 0)
            height = max(height, item_height)
            if total > self.sizes.limit:
                self.check(total)
        self.check(total)
        return _Known(value, total, height + 1)

    def check(self, total: int) -> None:
        if total > self.sizes.limit:
            raise OutputTooLarge(self.sizes.limit, self.what)


def _string_size(text: str) -> int:
    quoted: str = _encode_string(text)
    return len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass"))
