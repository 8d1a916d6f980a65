"""The suite's results as a text table (the terminal), a Markdown table and a JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report
from bench.results import Figure, Section

HEADERS = ("figure", "value", "unit", "target", "status", "note")


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def cells(figure: Figure) -> list[str]:
    target = str(figure.target) if figure.target else ""
    return [figure.name, number(figure.value), figure.unit, target, figure.status, figure.note]


def context_line(context: dict[str, Any]) -> str:
    load = context["load_average"]
    return (
        f"{context['date']}; {context['cpus']} CPUs; load average {load['start']} at the start,"
        f" {load['end']} at the end (1, 5, 15 min); "
        + ", ".join(f"{name} {version}" for name, version in context["versions"].items())
    )


def text(sections: Sequence[Section], context: dict[str, Any]) -> str:
    lines = [f"FlowTrux benchmarks{' (--quick)' if context['quick'] else ''}: "
             + context_line(context)]  # fmt: skip
    for section in sections:
        lines += ["", section.title]
        lines.append(report.table(HEADERS, [cells(figure) for figure in section.figures]))
        lines += (f"  - {note}" for note in section.notes)
    return "\n".join(lines)


def markdown(sections: Sequence[Section], context: dict[str, Any]) -> str:
    lines = ["# FlowTrux benchmark results", "", context_line(context)]
    if context["quick"]:
        lines.append("(`--quick`: small sizes, a smoke run; not figures to quote)")
    for section in sections:
        lines += ["", f"## {section.title}", "", _row(HEADERS), _row(["---"] * len(HEADERS))]
        lines += (_row(cells(figure)) for figure in section.figures)
        if section.notes:
            lines.append("")
            lines += (f"- {note}" for note in section.notes)
    return "\n".join(lines) + "\n"


def _row(values: Sequence[str]) -> str:
    escaped = (value.replace("|", "\\|") for value in values)
    return "| " + " | ".join(escaped) + " |"


def write(folder: Path, sections: Sequence[Section], context: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    results = {section.name: section.as_json() for section in sections}
    paths = [folder / "results.md", folder / "results.json"]
    paths[0].write_text(markdown(sections, context))
    paths[1].write_text(json.dumps({**context, "results": results}, indent=2) + "\n")
    return paths
