"""The size of a node's output as the store will write it, measured without writing it.

Outputs share structure: a template that is exactly `{{a.output}}` puts `a`'s output itself into
the new value, so a chain of `["{{prev.output}}", "{{prev.output}}"]` doubles its JSON at every
node while its objects stay few. Each object is measured once (its size is remembered by
identity), and the walk stops as soon as the total is over the limit, so measuring costs about as
much as the objects there are, never as much as the text they would make.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from flowtrux.engine.errors import NodeError
from flowtrux.strict_json import MAX_DEPTH

_encode_string: Final = json.encoder.encode_basestring


class OutputTooLarge(NodeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the output is larger than {limit:,} bytes of JSON, the limit set by"
            " FLOWTRUX_MAX_OUTPUT_BYTES"
        )


class OutputNotStorable(NodeError):
    """An output JSON cannot carry, or one nested too deep for every reader."""


def check_output(value: Any, limit: int) -> None:
    """Raise OutputTooLarge when `value` as compact UTF-8 JSON (as stored) is over `limit` bytes,
    OutputNotStorable when it is nested deeper than MAX_DEPTH or holds what JSON cannot."""
    measure = _Measure(limit)
    measure.check(measure.size(value, 0))


class _Measure:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: dict[int, int] = {}  # id of a string, list or object -> its size

    def size(self, value: Any, depth: int) -> int:
        match value:
            case None | True:
                return 4
            case False:
                return 5
            case int():
                return len(str(value))
            case float():
                if not math.isfinite(value):
                    raise OutputNotStorable(f"the output holds {value}, which JSON does not have")
                return len(repr(value))
            case str() | Mapping() | list() | tuple():
                found = self.known.get(id(value))
                if found is None:
                    found = self.known[id(value)] = self._measure(value, depth)
                return found
            case _:
                raise OutputNotStorable(f"the output holds a {type(value).__name__}, not JSON")

    def _measure(
        self, value: str | Mapping[str, Any] | list[Any] | tuple[Any, ...], depth: int
    ) -> int:
        if isinstance(value, str):
            total = _string_size(value)
        else:
            if depth >= MAX_DEPTH:
                raise OutputNotStorable(f"the output is nested deeper than {MAX_DEPTH} levels")
            total = 1 + max(len(value), 1)  # brackets and commas
            if isinstance(value, Mapping):
                for key, item in value.items():
                    total += _string_size(str(key)) + 1 + self.size(item, depth + 1)
                    self.check(total)
            else:
                for item in value:
                    total += self.size(item, depth + 1)
                    self.check(total)
        self.check(total)
        return total

    def check(self, total: int) -> None:
        if total > self.limit:
            raise OutputTooLarge(self.limit)


def _string_size(text: str) -> int:
    quoted: str = _encode_string(text)
    return len(quoted) if quoted.isascii() else len(quoted.encode("utf-8", "surrogatepass"))
