"""Goal 4: how long an event takes from the engine to the client: from a node's end to the
client's parse of its `node_complete`, with one stream and with 200 at once.

`flowtrux serve` (one worker) runs trigger -> delays (their lengths drawn once, so that events
come spread in time), each run streamed to the raw-socket reader of `bench.sse`, which parses
every `node_complete` and takes the wall clock. The node's end is its `endedAt`: the engine
takes it (`datetime.now`, the same clock) just before it emits the event. `endedAt` has
millisecond precision, truncated, so the true latency lies within 1 ms below the measured one:
the figures are the measured ones, an upper bound. Many streams start one after the other within
a second, so that their events do not come in bursts.
"""

from __future__ import annotations

import random
import time
from typing import Any

import attrs
import trio

from bench import report, served, sse, workflows
from bench.results import Figure, Section, at_most

MAX_P99_ONE_MS = 5
MAX_P99_MANY_MS = 50
PRECISION_MS = 1  # endedAt is truncated to the millisecond
# Many streams start one after the other over this long (a run's start costs more than a node):
# within a run's first delays, so that they are all open for most of the events.
START_SPREAD_S = 1.0


@attrs.frozen
class Shape:
    """`streams` runs at once, of trigger -> `delays` delays of `low_ms` to `high_ms`, `runs`
    times in a row."""

    streams: int
    runs: int
    delays: int
    low_ms: int
    high_ms: int

    def workflow(self) -> tuple[list[Any], list[Any]]:
        draw = random.Random(self.delays)
        lengths = [draw.randint(self.low_ms, self.high_ms) for _ in range(self.delays)]
        nodes = [workflows.delay(f"d{i}", ms) for i, ms in enumerate(lengths, 1)]
        return workflows.chain([workflows.trigger(), *nodes])


def shapes(quick: bool) -> dict[str, Shape]:
    many = 50 if quick else 200
    return {
        "one": Shape(streams=1, runs=1 if quick else 4, delays=50, low_ms=10, high_ms=30),
        "many": Shape(streams=many, runs=1, delays=20, low_ms=100, high_ms=300),
    }


async def lags(server: served.Served, workflow_id: str, shape: Shape) -> list[float]:
    """Every node_complete's lag in ms, over `shape.runs` rounds of `shape.streams` streams."""
    found: list[float] = []
    request = server.execute(workflow_id)
    spacing = START_SPREAD_S / shape.streams if shape.streams > 1 else 0

    async def one() -> None:
        seen = await sse.read_stream(server.port, request, time_nodes=True)
        if sse.event_name(seen.terminal) != b"complete":
            raise RuntimeError(f"event latency: the run ended {seen.terminal[:300]!r}")
        found.extend(lag * 1000 for lag in seen.lags)

    for _ in range(shape.runs):
        async with trio.open_nursery() as nursery:
            for _ in range(shape.streams):
                nursery.start_soon(one)
                await trio.sleep(spacing)
    return found


async def measure(quick: bool) -> Section:
    found: dict[str, dict[str, Any]] = {}
    async with served.served() as server:
        for key, shape in shapes(quick).items():
            workflow_id = await server.create_workflow(f"Delays {key}", *shape.workflow())
            await sse.read_stream(server.port, server.execute(workflow_id))  # warm-up
            cpu, started = time.process_time(), time.perf_counter()
            measured = await lags(server, workflow_id, shape)
            cpu_percent = 100 * (time.process_time() - cpu) / (time.perf_counter() - started)
            found[key] = summary(shape, measured, cpu_percent)
    return section(found)


def summary(shape: Shape, lags_ms: list[float], client_cpu_percent: float) -> dict[str, Any]:
    return {
        **attrs.asdict(shape),
        "events": len(lags_ms),
        "p50_ms": round(report.percentile(lags_ms, 50), 2),
        "p99_ms": round(report.percentile(lags_ms, 99), 2),
        "max_ms": round(max(lags_ms), 2),
        "client_cpu_percent": round(client_cpu_percent, 1),
    }


def section(found: dict[str, dict[str, Any]]) -> Section:
    one, many = found["one"], found["many"]
    figures = (
        Figure("1 stream: p50", one["p50_ms"], "ms"),
        Figure("1 stream: p99", one["p99_ms"], "ms", at_most(MAX_P99_ONE_MS)),
        Figure(f"{many['streams']} streams at once: p50", many["p50_ms"], "ms"),
        Figure(f"{many['streams']} streams at once: p99", many["p99_ms"], "ms",
               at_most(MAX_P99_MANY_MS)),
    )  # fmt: skip
    notes = (
        "node's endedAt (ms, truncated) to the client's parse of its node_complete: an upper"
        f" bound, the true figure is up to {PRECISION_MS} ms lower",
        *(
            f"{key}: {value['events']} events from {value['streams']} stream(s) x"
            f" {value['runs']} run(s) of {value['delays']} delays of {value['low_ms']}-"
            f"{value['high_ms']} ms (about {_node_rate(value):.0f} node ends/s);"
            f" worst {value['max_ms']} ms; the reader used {value['client_cpu_percent']}% of a core"
            for key, value in found.items()
        ),
    )
    return Section(
        "event_latency", "Goal 4: event latency, engine to client", figures, notes, found
    )


def _node_rate(found: dict[str, Any]) -> float:
    return float(found["streams"] * 2000 / (found["low_ms"] + found["high_ms"]))
