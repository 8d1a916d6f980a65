"""Goal 1: the cost per node of a run streamed end to end, against a bare-Trio floor.

`flowtrux serve` (one worker, SQLite) streams trigger -> 1,000 transforms (and trigger -> 1,000
parallel transforms -> a join) to the raw-socket reader of `bench.sse`; the floor server of
`bench.floor` streams the same events of the same shapes to the same reader; n8n, when it is
installed, runs a 1,000-node chain behind a webhook (it answers once, at the end). The cases run
in interleaved rounds, so that they share the machine's noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import attrs

from bench import floor, rawhttp, served, sse, workflows
from bench.n8n import N8n, chain_path
from bench.results import Figure, Section, at_most, ratio

BODY = b'{"x":1}'
MAX_US_PER_NODE = 90
MAX_TIMES_FLOOR = 3


class WrongResult(RuntimeError):
    pass


@attrs.frozen
class Read:
    seconds: float  # the request sent to the last event (or the answer) read
    reader_cpu_s: float  # the reader's own CPU time meanwhile


@attrs.frozen
class Case:
    key: str
    title: str
    nodes: int  # every node, the trigger (and the join) included
    read: Callable[[], Awaitable[Read]]


def stream_case(key: str, title: str, nodes: int, port: int, request: bytes) -> Case:
    async def read() -> Read:
        cpu = time.thread_time()
        seen = await sse.read_stream(port, request)
        cpu = time.thread_time() - cpu
        if sse.event_name(seen.terminal) != b"complete" or seen.events != 2 * nodes + 2:
            raise WrongResult(f"{key}: {seen.events} events, ended {seen.terminal[:300]!r}")
        return Read(seen.seconds, cpu)

    return Case(key, title, nodes, read)


def n8n_case(n8n: N8n, transforms: int) -> Case:
    async def read() -> Read:
        cpu, started = time.thread_time(), time.perf_counter()
        answer = await n8n.call(chain_path(transforms))
        seconds = time.perf_counter() - started
        if answer.head.status != 200 or b'"i"' not in answer.body:
            raise WrongResult(f"n8n: {answer.head.status} {answer.body[:300]!r}")
        return Read(seconds, time.thread_time() - cpu)

    return Case("n8n_chain", "n8n: chain, webhook (one answer)", transforms + 1, read)


async def flowtrux_cases(stack: AsyncExitStack, transforms: int) -> list[Case]:
    server = await stack.enter_async_context(served.served())
    chain = await server.create_workflow("Chain", *workflows.transform_chain(transforms))
    fan_out = await server.create_workflow("Fan-out", *workflows.fan_out(transforms))
    return [
        stream_case(
            "flowtrux_chain", "FlowTrux: chain", transforms + 1, server.port,
            server.execute(chain, BODY),
        ),
        stream_case(
            "flowtrux_fan_out", "FlowTrux: fan-out + join", transforms + 2, server.port,
            server.execute(fan_out, BODY),
        ),
    ]  # fmt: skip


async def floor_cases(stack: AsyncExitStack, transforms: int) -> list[Case]:
    bare = await stack.enter_async_context(floor.running_floor())
    return [
        stream_case(
            f"floor_{shape}", f"floor (bare Trio): {shape.replace('_', '-')}", nodes, bare.port,
            rawhttp.request("POST", f"/{shape}?nodes={nodes}", BODY),
        )
        for shape, nodes in [("chain", transforms + 1), ("fan_out", transforms + 2)]
    ]  # fmt: skip


async def run_rounds(cases: list[Case], rounds: int) -> dict[str, list[Read]]:
    """One uncounted round, then `rounds` rounds each reading every case once."""
    for case in cases:
        await case.read()
    reads: dict[str, list[Read]] = {case.key: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            reads[case.key].append(await case.read())
    return reads


def summary(case: Case, reads: list[Read]) -> dict[str, float | str | int]:
    seconds = [read.seconds for read in reads]
    return {
        "title": case.title,
        "nodes": case.nodes,
        "min_us_per_node": round(min(seconds) / case.nodes * 1e6, 1),
        "median_us_per_node": round(statistics.median(seconds) / case.nodes * 1e6, 1),
        "reader_cpu_us_per_node": round(
            statistics.median(read.reader_cpu_s for read in reads) / case.nodes * 1e6, 1
        ),
    }


async def measure(n8n: N8n | None, n8n_skipped: str, quick: bool) -> Section:
    transforms, rounds = (1000, 3) if quick else (1000, 10)
    async with AsyncExitStack() as stack:
        cases = await flowtrux_cases(stack, transforms) + await floor_cases(stack, transforms)
        if n8n is not None:
            cases.append(n8n_case(n8n, transforms))
        reads = await run_rounds(cases, rounds)
    found = {case.key: summary(case, reads[case.key]) for case in cases}
    return section(found, n8n_skipped, rounds)


def _median(found: dict[str, dict[str, float | str | int]], key: str) -> float | None:
    value = found.get(key, {}).get("median_us_per_node")
    return float(value) if value is not None else None


def section(
    found: dict[str, dict[str, float | str | int]], n8n_skipped: str, rounds: int
) -> Section:
    chain, fan_out = _median(found, "flowtrux_chain"), _median(found, "flowtrux_fan_out")
    floor_chain, floor_fan_out = _median(found, "floor_chain"), _median(found, "floor_fan_out")
    n8n_chain = _median(found, "n8n_chain")
    per_node = "µs/node"
    figures = [
        Figure("FlowTrux chain, 1,000 transforms", chain, per_node, at_most(MAX_US_PER_NODE)),
        Figure("  the same / bare-Trio floor", ratio(chain, floor_chain), "x",
               at_most(MAX_TIMES_FLOOR), _floor_note(floor_chain)),
        Figure("FlowTrux fan-out 1,000 + join", fan_out, per_node),
        Figure("  the same / bare-Trio floor", ratio(fan_out, floor_fan_out), "x", None,
               _floor_note(floor_fan_out)),
        Figure("n8n chain, 1,000 Set nodes, webhook", n8n_chain, per_node, None, n8n_skipped),
        Figure("  n8n / FlowTrux chain", ratio(n8n_chain, chain), "x", None, n8n_skipped),
    ]  # fmt: skip
    notes = (
        f"medians of {rounds} interleaved rounds; every node counted (trigger, join);"
        " the reader's own CPU: "
        + ", ".join(
            f"{key} {value['reader_cpu_us_per_node']} µs/node" for key, value in found.items()
        ),
        "n8n answers once, when its run ends (nothing streamed), and saves the execution (its"
        " default); FlowTrux stores every event and log before it sends it",
    )
    return Section(
        "node_cost", "Goal 1: cost per node, streamed end to end", tuple(figures), notes, found
    )


def _floor_note(floor_us: float | None) -> str:
    return f"floor {floor_us:.1f} µs/node" if floor_us else ""
