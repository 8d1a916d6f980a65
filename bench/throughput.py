"""Goals 2 and 3: runs per second, and their latency, under a steady load of keep-alive clients.

Each server runs trigger -> 4 transforms (5 nodes) per request, answered once the run ends:
FlowTrux's `POST /api/workflows/{id}/execute` (JSON, the logs included), served by one worker,
then by `--workers 2`; n8n's Webhook -> 4 Set nodes answering with the last node's output, when
it is installed. `bench.load`'s clients (8, then 32 connections) drive each server in turn,
after an uncounted warm-up of each, in interleaved slices, so that all of them share the
machine's noise. Before that, the same clients drive the floor server's `/json` (an answer at
once): what they can do at most.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from bench import floor, load, procs, rawhttp, report, served, workflows
from bench.n8n import N8n, chain_path
from bench.results import Figure, Section, at_least, at_most, ratio

BODY = b'{"x":1}'
CLIENTS = (8, 32)
TRANSFORMS = 4
WARMUP_S = 2.0  # of each server, before any slice is counted
CLIENT_PROCESSES = 1  # enough: see the client's CPU and its capacity in the notes
MIN_RUNS_PER_S = 500
MAX_P99_MS = 30
MIN_WORKERS_GAIN = 1.8  # "close to 2x"
MIN_TIMES_N8N = 3
CLIENT_BUSY_PERCENT = 50  # a client process busier than this may be what holds the rate back
CLIENT_HEADROOM = 5  # its capacity must be this many times the best rate measured


Found = dict[str, dict[str, Any]]  # each case's summary, by "server_clients"


@attrs.frozen
class Server:
    key: str
    title: str
    port: int
    pid: int
    request: bytes
    expect: bytes  # what a successful answer holds


@attrs.frozen
class Slice:
    load: load.LoadResult
    seconds: float
    process_cpu_s: list[float]  # each server process's CPU time, during the window
    machine_busy_s: float  # every core's busy time added up, during the window
    connections: list[int]  # the clients' connections each server process held, halfway


async def flowtrux_server(stack: AsyncExitStack, workers: int) -> Server:
    server = await stack.enter_async_context(served.served(workers=workers))
    workflow_id = await server.create_workflow("Chain", *workflows.transform_chain(TRANSFORMS))
    key, title = ("flowtrux", "FlowTrux") if workers == 1 else ("flowtrux_2", "FlowTrux -w 2")
    request = server.execute(workflow_id, BODY, stream=False)
    return Server(key, title, server.port, server.process.pid, request, b'"success":true')


def n8n_server(n8n: N8n) -> Server:
    request = n8n.request(chain_path(TRANSFORMS), BODY)
    return Server("n8n", "n8n", n8n.port, n8n.process.pid, request, b'"i":1')


async def one_slice(server: Server, clients: int, seconds: float) -> Slice:
    cpu, (busy, _) = procs.cpu_seconds(server.pid), procs.machine_cpu_seconds()
    held: list[int] = []

    async def count_connections() -> None:  # halfway through the window
        await trio.sleep(load.WARMUP_S + seconds / 2)
        held.extend(procs.connections(procs.descendants(server.pid), server.port))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count_connections)
        found = await load.drive(
            server.port, server.request, server.expect, clients, seconds, CLIENT_PROCESSES
        )
    after, (busy_after, _) = procs.cpu_seconds(server.pid), procs.machine_cpu_seconds()
    # The warm-up's CPU is counted too: the window's share of it is taken.
    share = seconds / (seconds + load.WARMUP_S)
    used = sorted((after.get(pid, 0.0) - cpu.get(pid, 0.0) for pid in after), reverse=True)
    return Slice(
        found, seconds, [used_s * share for used_s in used], (busy_after - busy) * share,
        sorted((count for count in held if count), reverse=True),
    )  # fmt: skip


def summary(slices: list[Slice]) -> dict[str, Any]:
    found = load.LoadResult.combined([piece.load for piece in slices])
    seconds = sum(piece.seconds for piece in slices)
    runs = len(found.latencies_ms)
    by_process = [
        sum(each) for each in zip(*(piece.process_cpu_s for piece in slices), strict=False)
    ]
    server_cpu = sum(by_process)
    return {
        "runs": runs,
        "runs_per_s": round(runs / seconds, 1),
        "p50_ms": round(report.percentile(found.latencies_ms, 50), 2) if runs else "",
        "p99_ms": round(report.percentile(found.latencies_ms, 99), 2) if runs else "",
        "errors": found.errors,
        "first_error": found.first_error,
        "server_cpu_percent": round(100 * server_cpu / seconds, 1),
        "server_process_cpu_percent": [round(100 * each / seconds) for each in by_process],
        "server_cpu_ms_per_run": round(1000 * server_cpu / runs, 2) if runs else "",
        "client_cpu_percent": round(100 * sum(found.client_cpu_s) / seconds, 1),
        "machine_busy_percent": round(100 * sum(p.machine_busy_s for p in slices) / seconds),
        "connections_by_process": [piece.connections for piece in slices],
    }


async def client_capacity(seconds: float) -> float:
    """Answers per second the load client gets from the floor's `/json` with 32 connections."""
    async with floor.running_floor() as bare:
        request = rawhttp.request("POST", "/json", BODY)
        found = await load.drive(bare.port, request, b"success", max(CLIENTS), seconds, 1)
    return len(found.latencies_ms) / seconds


async def measure(n8n: N8n | None, n8n_skipped: str, quick: bool) -> Section:
    seconds, rounds = (2.0, 1) if quick else (10.0, 2)
    capacity = await client_capacity(min(seconds, 3.0))
    slices: dict[tuple[str, int], list[Slice]] = {}
    async with AsyncExitStack() as stack:
        servers = [await flowtrux_server(stack, 1), await flowtrux_server(stack, 2)]
        servers += [n8n_server(n8n)] if n8n else []
        for server in servers:  # uncounted: a fresh server is slower for a while
            await one_slice(server, CLIENTS[0], WARMUP_S)
        for clients in CLIENTS:
            for _ in range(rounds):
                for server in servers:
                    piece = await one_slice(server, clients, seconds / rounds)
                    slices.setdefault((server.key, clients), []).append(piece)
    found = {f"{key}_{clients}": summary(pieces) for (key, clients), pieces in slices.items()}
    return section(found, capacity, n8n_skipped, seconds)


def _figure(found: Found, key: str, name: str) -> float | None:
    """The figure, or None where no run succeeded."""
    value = found.get(key, {}).get(name)
    runs = found.get(key, {}).get("runs")
    return float(value) if isinstance(value, (int, float)) and runs else None


def _errors(found: Found, key: str, otherwise: str = "") -> str:
    errors = found.get(key, {}).get("errors")
    return f"{errors} errors (see below)" if errors else otherwise


def section(
    found: Found,
    capacity: float,
    n8n_skipped: str,
    seconds: float,
) -> Section:
    return Section(
        "throughput",
        "Goals 2 and 3: runs/s of a 5-node chain (execute, JSON answer), keep-alive clients",
        tuple(_figures(found, n8n_skipped)),
        tuple(_notes(found, capacity, seconds)),
        {"client_capacity_per_s": round(capacity), **found},
    )


def _figures(found: Found, n8n_skipped: str) -> Iterator[Figure]:
    for clients in CLIENTS:
        one = _figure(found, f"flowtrux_{clients}", "runs_per_s")
        two = _figure(found, f"flowtrux_2_{clients}", "runs_per_s")
        n8n = _figure(found, f"n8n_{clients}", "runs_per_s")
        first = clients == CLIENTS[0]
        yield Figure(f"FlowTrux, {clients} clients", one, "runs/s",
                     at_least(MIN_RUNS_PER_S) if first else None,
                     _errors(found, f"flowtrux_{clients}"))  # fmt: skip
        yield Figure("  p50 latency", _figure(found, f"flowtrux_{clients}", "p50_ms"), "ms")
        yield Figure("  p99 latency", _figure(found, f"flowtrux_{clients}", "p99_ms"), "ms",
                     at_most(MAX_P99_MS) if first else None)  # fmt: skip
        yield Figure(f"FlowTrux --workers 2, {clients} clients", two, "runs/s", None,
                     _errors(found, f"flowtrux_2_{clients}"))  # fmt: skip
        yield Figure("  / 1 worker", ratio(two, one), "x", at_least(MIN_WORKERS_GAIN),
                     "target: close to 2x")  # fmt: skip
        yield Figure(f"n8n, {clients} clients", n8n, "runs/s", None,
                     _errors(found, f"n8n_{clients}", n8n_skipped))  # fmt: skip
        yield Figure("  p99 latency", _figure(found, f"n8n_{clients}", "p99_ms"), "ms", None,
                     n8n_skipped)  # fmt: skip
        yield Figure("  FlowTrux / n8n", ratio(one, n8n), "x", at_least(MIN_TIMES_N8N), n8n_skipped)


def _notes(found: Found, capacity: float, seconds: float) -> Iterator[str]:
    busiest = max(float(value["client_cpu_percent"]) for value in found.values())
    fastest = max(float(value["runs_per_s"]) for value in found.values()) or math.nan  # none ran
    verdict = (
        "it is not the bottleneck"
        if busiest < CLIENT_BUSY_PERCENT and capacity > CLIENT_HEADROOM * fastest
        else "IT MAY BE THE BOTTLENECK"
    )
    yield (
        f"{seconds:g} s per case after a 1 s warm-up; the client ({CLIENT_PROCESSES} process,"
        f" raw sockets) gets {capacity:,.0f} answers/s from a server that answers at once"
        f" ({capacity / fastest:.0f}x the most any server here gave), and used at most"
        f" {busiest}% of a core meanwhile: {verdict}"
    )
    yield (
        "server CPU in % of one core (its busy processes), ms per run; and the whole machine's"
        f" busy time, in % of one core (of {100 * (os.cpu_count() or 1)}%): "
        + ", ".join(
            f"{key} {value['server_cpu_percent']}% ({_busy(value)})"
            f" {value['server_cpu_ms_per_run']} ms, machine {value['machine_busy_percent']}%"
            for key, value in found.items()
        )
    )
    for key, value in found.items():
        if value["errors"]:
            yield f"{key}: {value['errors']} errors, the first: {value['first_error']}"
    yield "the clients' connections each server process held, halfway through each slice: " + (
        ", ".join(f"{key} {value['connections_by_process']}" for key, value in found.items())
    )
    yield (
        f"{os.cpu_count()} cores: `--workers 2` shares them with the client, the other servers'"
        " idle loops and whatever else runs on the machine"
    )


def _busy(found: dict[str, Any]) -> str:
    return " + ".join(f"{each}%" for each in found["server_process_cpu_percent"] if each >= 1)
