"""`{{ path }}` templates inside the strings of a node's JSON configuration.

A string that is exactly one template becomes the value at its path, whatever its type; inside
longer text each value is written as text (strings as themselves, everything else as compact
JSON). Only the values of objects are rendered, never their keys.

Values are never changed once a node has output them, so a whole-template string puts the value
itself into the result, not a copy: rendering costs what the config holds, not what it reads.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

import attrs

from flowtrux.engine.errors import MissingPath
from flowtrux.engine.paths import check_root, is_valid_path, resolve, root_of
from flowtrux.engine.sizes import Budget

# Everything from `{{` to the first `}}`; an unclosed template runs to the end with `close` empty.
_TEMPLATE: Final = re.compile(r"\{\{(?P<content>.*?)(?P<close>\}\}|\Z)", re.DOTALL)
PARSED_ONCE: Final = 1024  # characters: longer strings are parsed at each render, not kept


def render(value: Any, scope: Mapping[str, Any], budget: Budget) -> Any:
    """`value` with the templates in its strings replaced by values from `scope`.

    `value` is not changed; values taken whole from `scope` are shared, not copied. An unclosed
    `{{` is left as text (`template_problems` reports it). Raises MissingPath naming the path
    when a template's path has no value in `scope` or is not a valid path, and OutputTooLarge
    as soon as what is built is over the `budget` (about its size as JSON, never more).
    """
    match value:
        case str():
            return _render_string(value, scope, budget)
        case Mapping():
            budget.spend(1 + len(value))
            rendered = {}
            for key, item in value.items():
                budget.spend(len(key) + 3)
                rendered[key] = render(item, scope, budget)
            return rendered
        case list() | tuple():
            budget.spend(1 + len(value))
            return [render(item, scope, budget) for item in value]
        case _:
            budget.spend(1)
            return value


def template_paths(value: Any) -> list[str]:
    """Every valid path the templates in `value` read, in order of appearance, without repeats."""
    found = (
        path
        for text in _strings(value)
        for template in _TEMPLATE.finditer(text)
        if template["close"] and is_valid_path(path := template["content"].strip())
    )
    return list(dict.fromkeys(found))


def template_problems(value: Any, roots: Collection[str] = ()) -> list[str]:
    """Sentences describing each malformed template in `value`, without repeats. A path may
    also start with one of `roots` (an agent tool's `args`)."""
    problems = (
        problem
        for text in _strings(value)
        for template in _TEMPLATE.finditer(text)
        if (problem := _problem(template, roots)) is not None
    )
    return list(dict.fromkeys(problems))


def _problem(template: re.Match[str], roots: Collection[str]) -> str | None:
    path = template["content"].strip()
    if not template["close"]:
        return f"template '{template[0]}' is not closed with '}}}}'"
    if not path:
        return f"template '{template[0]}' is empty"
    if not is_valid_path(path):
        return (
            f"template '{template[0]}' does not contain a path"
            " (paths look like trigger.data.x or node-id.output.x)"
        )
    if root_of(path) in roots:
        return None
    root_problem = check_root(path)
    return None if root_problem is None else f"template '{template[0]}': {root_problem}"


def _render_string(text: str, scope: Mapping[str, Any], budget: Budget) -> Any:
    if "{{" not in text:
        budget.spend(len(text) + 2)
        return text
    parsed = _parse_kept(text) if len(text) <= PARSED_ONCE else _parse(text)
    if len(parsed) == 1 and isinstance(parsed[0], _Slot) and parsed[0].closed:
        value = _lookup(parsed[0], scope)
        budget.share(value)
        return value
    pieces = []
    budget.spend(2)
    for piece in parsed:
        if isinstance(piece, _Slot):
            piece = _as_text(_lookup(piece, scope)) if piece.closed else piece.source
        budget.spend(len(piece))
        pieces.append(piece)
    return "".join(pieces)


@attrs.frozen
class _Slot:
    """A template in a string: its text, and the path it reads (None: not closed, so text)."""

    source: str
    path: str | None

    @property
    def closed(self) -> bool:
        return self.path is not None


def _parse(text: str) -> tuple[str | _Slot, ...]:
    """`text` as its literal pieces (never empty) and its templates, in order."""
    pieces: list[str | _Slot] = []
    done = 0
    for template in _TEMPLATE.finditer(text):
        if template.start() > done:
            pieces.append(text[done : template.start()])
        path = template["content"].strip() if template["close"] else None
        pieces.append(_Slot(template[0], path))
        done = template.end()
    if done < len(text):
        pieces.append(text[done:])
    return tuple(pieces)


# The same strings of a workflow's nodes are rendered at every run: short ones are parsed once.
_parse_kept: Final = functools.lru_cache(maxsize=4096)(_parse)


def _lookup(slot: _Slot, scope: Mapping[str, Any]) -> Any:
    assert slot.path is not None
    if not is_valid_path(slot.path):
        raise MissingPath(slot.path, f"template '{slot.source}' does not contain a valid path")
    return resolve(scope, slot.path)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _strings(value: Any) -> Iterator[str]:
    match value:
        case str():
            yield value
        case Mapping():
            for item in value.values():
                yield from _strings(item)
        case list() | tuple():
            for item in value:
                yield from _strings(item)
