"""Dotted paths into a run's scope.

A scope maps `"trigger"` to `{"data": ...}` and each finished node's id to `{"output": ...}`. A
path such as `trigger.data.items.0` or `agent-1.output.priority` walks into it one segment at a
time: object keys by name, list items by index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from flowtrux.engine.errors import MissingPath

PATH_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
"""The syntax of a path: two or more segments of letters, digits, `-` and `_`, joined by `.`."""

_INDEX: Final = re.compile(r"[0-9]+")


def is_valid_path(text: str) -> bool:
    """Whether `text` is, as a whole, a path by the syntax of `PATH_PATTERN`."""
    return PATH_PATTERN.fullmatch(text) is not None


def root_of(path: str) -> str:
    """The first segment of `path`: a node id, or `"trigger"`."""
    return path.split(".", 1)[0]


def check_root(path: str) -> str | None:
    """A sentence saying what is wrong when `path` does not start with `trigger.data` or
    `<nodeId>.output`, else None."""
    root, _, rest = path.partition(".")
    second = rest.split(".", 1)[0]
    if (root, second) == ("trigger", "data") or (root != "trigger" and second == "output"):
        return None
    return f"path '{path}' must read '<nodeId>.output' or 'trigger.data'"


def json_type(value: Any) -> str:
    """The JSON name of `value`'s type: null, boolean, number, string, list or object."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list() | tuple():
            return "list"
        case Mapping():
            return "object"
        case _:
            return type(value).__name__


def resolve(scope: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in `scope`. A JSON null (`None`) found there is a value like any other.

    Raises MissingPath, with a reason naming the failing segment, when a key is absent, a list
    index is not a number or out of range, or a segment reads into a string, number, bool or null.
    """
    value: Any = scope
    segments = path.split(".")
    for depth, segment in enumerate(segments):
        if type(value) is dict and segment in value:  # the common case, first
            value = value[segment]
        else:
            value = _step(value, segment, ".".join(segments[:depth]) or "the scope", path)
    return value


def _step(value: Any, segment: str, parent: str, path: str) -> Any:
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        raise MissingPath(path, f"no key '{segment}' in {parent}")
    if isinstance(value, list | tuple):
        if not _INDEX.fullmatch(segment):
            raise MissingPath(path, f"'{segment}' is not a list index ({parent} is a list)")
        index = int(segment)
        if index < len(value):
            return value[index]
        raise MissingPath(path, f"index {index} out of range for list of {len(value)} at {parent}")
    kind = json_type(value)
    article = "" if kind == "null" else "an " if kind[0] in "aeiou" else "a "
    raise MissingPath(path, f"cannot read '{segment}' of {article}{kind} at {parent}")
