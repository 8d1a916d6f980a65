"""What a benchmark of the suite hands back: figures, each with its target and PASS or MISS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Target:
    """A bound a figure must not pass: `value <= bound` (`at_most`) or `value >= bound`."""

    bound: float
    at_most: bool = True

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.bound:g}"


def at_most(bound: float) -> Target:
    return Target(bound, at_most=True)


def at_least(bound: float) -> Target:
    return Target(bound, at_most=False)


@attrs.frozen
class Figure:
    """One measured figure; `value` None when it could not be measured (`note` says why)."""

    name: str
    value: float | None
    unit: str
    target: Target | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None:
            return "SKIP" if self.target else ""
        if self.target is None:
            return ""
        return "PASS" if self.target.met(self.value) else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": str(self.target) if self.target else None,
            "status": self.status or None,
            "note": self.note or None,
        }


@attrs.frozen
class Section:
    """One benchmark's figures, notes for the reader, and its detailed figures for the JSON."""

    name: str  # what `--only` takes
    title: str
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = attrs.field(factory=dict)
    error: str = ""  # the benchmark could not run: why

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "error": self.error or None,
            "figures": [figure.as_json() for figure in self.figures],
            "notes": list(self.notes),
            "details": dict(self.details),
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
