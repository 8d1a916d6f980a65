"""Shared output: versions and load, summary statistics, a text table and the final JSON line."""

import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)


def context(*packages: str) -> dict[str, Any]:
    """The Python version, those of `packages`, the CPU count and the 1-minute load average
    (take it at the end of a run: the machine may be shared, and the figures are as noisy as it
    is busy)."""
    return {
        "python": sys.version.split()[0],
        **{name: version(name) for name in packages},
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def describe(found: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in found.items())


def p90(values: Sequence[float]) -> float:
    return percentile(values, 90)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100), interpolated between the two nearest values."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Right-aligned columns; floats with two decimals."""
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    )


def _cell(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def print_json(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, separators=(",", ":")))
