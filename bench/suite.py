"""The benchmarks `python -m bench` runs, in order, and n8n, which two of them share: installed
and started once, on first use, and stopped at the end."""

from __future__ import annotations

import os
import platform
import subprocess
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from bench import (
    cancel_latency,
    engine_cost,
    event_latency,
    memory,
    n8n,
    node_cost,
    outbound,
    throughput,
    workflow_create,
)
from bench.n8n import N8n
from bench.results import Figure, Section

PACKAGES = ("trio", "hypercorn", "starlette", "h11", "h2", "httpx", "attrs")
N8N_CHAINS = (throughput.TRANSFORMS, 1000)  # the workflows the benchmarks call


@attrs.define
class Lab:
    """What the benchmarks share: the size of the run, and n8n."""

    stack: AsyncExitStack
    quick: bool
    with_n8n: bool
    n8n: N8n | None = None
    n8n_skipped: str = ""
    n8n_tried: bool = False

    async def open_n8n(self) -> tuple[N8n | None, str]:
        """n8n started (once), or None and why not."""
        if not self.n8n_tried:
            self.n8n_tried = True
            self.n8n_skipped = "--no-n8n" if not self.with_n8n else await n8n.install()
            if not self.n8n_skipped:
                try:
                    running = n8n.running_n8n(N8N_CHAINS)
                    self.n8n = await self.stack.enter_async_context(running)
                except (RuntimeError, OSError, httpx.HTTPError, trio.TooSlowError) as exc:
                    self.n8n_skipped = f"n8n did not start: {type(exc).__name__}: {exc}"
        return self.n8n, self.n8n_skipped


async def _node_cost(lab: Lab) -> Section:
    return await node_cost.measure(*await lab.open_n8n(), lab.quick)


async def _throughput(lab: Lab) -> Section:
    return await throughput.measure(*await lab.open_n8n(), lab.quick)


async def _cancel_latency(lab: Lab) -> Section:
    return cancel_latency.section(await cancel_latency.benchmark(30 if lab.quick else 200))


# In order: those against `flowtrux serve` first; those that run FlowTrux in this process (which
# then tunes the process's GIL switch interval and allocator) last.
BENCHMARKS: dict[str, Callable[[Lab], Awaitable[Section]]] = {
    "node_cost": _node_cost,
    "throughput": _throughput,
    "event_latency": lambda lab: event_latency.measure(lab.quick),
    "cancel_latency": _cancel_latency,
    "memory": lambda lab: memory.measure(lab.quick),
    "engine_cost": lambda lab: engine_cost.measure(lab.quick),
    "workflow_create": lambda lab: workflow_create.measure(lab.quick),
    "outbound": lambda lab: outbound.measure(lab.quick),
}


async def run_one(name: str, lab: Lab) -> Section:
    """The benchmark's section; one that says what went wrong if it raised (the others run)."""
    try:
        return await BENCHMARKS[name](lab)
    except Exception as exc:
        traceback.print_exc()
        what = f"{type(exc).__name__}: {exc}"[:2000]
        return Section(
            name, f"{name}: FAILED", (Figure("error", None, "", None, what),), error=what
        )


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def context(quick: bool, started: datetime, load_at_start: list[float], lab: Lab) -> dict[str, Any]:
    versions = {"python": platform.python_version(), "flowtrux": _commit()}
    versions |= {name: version(name) for name in PACKAGES}
    if lab.n8n is not None:
        versions |= {"n8n": n8n.VERSION, "node": _output(["node", "--version"])}
    return {
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "quick": quick,
        "cpus": os.cpu_count(),
        "load_average": {"start": load_at_start, "end": load_average()},
        "versions": versions,
        "n8n_skipped": lab.n8n_skipped or None,
    }


def _commit() -> str:
    here = Path(__file__).parent
    commit = _output(["git", "-C", str(here), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(here), "status", "--porcelain", "--", ":/flowtrux"])
    return f"{commit}{' + changes' if dirty else ''}"


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return done.stdout.strip()
