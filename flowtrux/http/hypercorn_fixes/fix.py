"""One correction to hypercorn: a method replaced by a corrected one, only while upstream still
has the bug."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs


@attrs.frozen
class Fix:
    """A method of hypercorn replaced by a corrected one; `bug` is upstream code with the bug."""

    owner: type
    name: str
    bug: str
    corrected: Callable[..., Any]
    original: Callable[..., Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "original", getattr(self.owner, self.name))

    @property
    def where(self) -> str:
        return f"{self.owner.__name__}.{self.name}"

    @property
    def applied(self) -> bool:
        return getattr(self.owner, self.name) is self.corrected

    def upstream_has_bug(self) -> bool:
        try:
            source = inspect.getsource(getattr(self.owner, self.name))
        except (OSError, TypeError):
            return False
        return "".join(self.bug.split()) in "".join(source.split())
