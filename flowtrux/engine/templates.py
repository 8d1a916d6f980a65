"""`{{ path }}` templates inside the strings of a node's JSON configuration.

A string that is exactly one template becomes the value at its path, whatever its type; inside
longer text each value is written as text (strings as themselves, everything else as compact
JSON). Only the values of objects are rendered, never their keys.

Values are never changed once a node has output them, so a whole-template string puts the value
itself into the result, not a copy: rendering costs what the config holds, not what it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

from flowtrux.engine.errors import MissingPath
from flowtrux.engine.paths import check_root, is_valid_path, resolve, root_of
from flowtrux.engine.sizes import Budget

# Everything from `{{` to the first `}}`; an unclosed template runs to the end with `close` empty.
_TEMPLATE: Final = re.compile(r"\{\{(?P<content>.*?)(?P<close>\}\}|\Z)", re.DOTALL)


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
    whole = _TEMPLATE.match(text)
    if whole is not None and whole["close"] and whole.end() == len(text):
        value = _lookup(whole, scope)
        budget.share(value)
        return value
    pieces, done = [], 0
    budget.spend(2)
    for template in _TEMPLATE.finditer(text):
        filled = _as_text(_lookup(template, scope)) if template["close"] else template[0]
        budget.spend(template.start() - done + len(filled))
        pieces += [text[done : template.start()], filled]
        done = template.end()
    budget.spend(len(text) - done)
    pieces.append(text[done:])
    return "".join(pieces)


def _lookup(template: re.Match[str], scope: Mapping[str, Any]) -> Any:
    path = template["content"].strip()
    if not is_valid_path(path):
        raise MissingPath(path, f"template '{template[0]}' does not contain a valid path")
    return resolve(scope, path)


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
