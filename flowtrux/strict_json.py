"""JSON as FlowTrux takes it in and writes it out: strict, bounded, and always storable.

`loads` is the door for everything a caller sends. It takes only what every JSON parser and the
store can carry: no `NaN` or `Infinity`, numbers that fit a double, no lone UTF-16 surrogates,
nesting at most `MAX_DEPTH` deep. What passes can be written back with `dumps` and stored.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Final

MAX_DEPTH: Final = 64
_LARGEST: Final = int(sys.float_info.max)
_MAX_INT_DIGITS: Final = len(str(_LARGEST))  # 309: checked before the text becomes an int


class NotStrictJson(ValueError):
    """The text is not JSON FlowTrux accepts; the message says why, as the end of a sentence
    that starts "The request body ..."."""


def loads(text: str | bytes) -> Any:
    """Parse `text` strictly. Raises NotStrictJson. Blocking: about 10 ms a MiB."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise NotStrictJson(f"is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise NotStrictJson("is not UTF-8 text") from None
    _check_tree(value)
    return value


def dumps(value: Any) -> str:
    """One line of compact JSON, non-ASCII text as itself. Raises ValueError for a value JSON
    cannot carry (NaN, Infinity), TypeError for one that is not JSON at all."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def utf8(text: str) -> bytes:
    """JSON text as UTF-8 bytes. Text an earlier version stored may hold a lone UTF-16
    surrogate, which UTF-8 cannot carry: that text is written again with every non-ASCII
    character escaped (`\\ud800`), which every JSON parser reads back as it was stored."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), separators=(",", ":")).encode("ascii")


def _constant(name: str) -> Any:
    raise NotStrictJson(f"holds {name}, which JSON does not have; send a number or null")


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _out_of_range(text)
    return number


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS or abs(number := int(text)) > _LARGEST:
        raise _out_of_range(text)
    return number


def _out_of_range(text: str) -> NotStrictJson:
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
    return NotStrictJson(f"holds the number {shown}, which does not fit a double")


def _too_deep() -> NotStrictJson:
    return NotStrictJson(f"is nested deeper than {MAX_DEPTH} levels of objects and lists")


def _check_tree(value: Any) -> None:
    """Depth and text of a parsed value, without recursion (the depth is what is checked)."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                item = item.values()
            todo.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise NotStrictJson(
            f"holds a lone UTF-16 surrogate (\\u{code:04x}), which is not text; send valid"
            " Unicode (a surrogate must be half of a pair)"
        ) from None
