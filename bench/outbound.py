"""Requests that reach out: what one costs through the `http` node, and how soon a cancelled
request's socket is closed.

A plain Trio HTTP/1.1 server on 127.0.0.1 (keep-alive) answers `GET /json` with a small JSON
body, and on `GET /hang` reads the request, then waits, noting when its client closes the
socket. The FlowTrux side is the engine with the app's outbound clients (127.0.0.1 opened, as
`FLOWTRUX_HTTP_ALLOW_CIDRS` would).

- *bare httpx*: `--nodes` GETs in a row on one `httpx.AsyncClient`: the floor;
- *http nodes*: a chain of `--nodes` http nodes doing the same GET, through the guard, the
  bounded read, JSON parsing, secrets scrubbing and the engine (each round runs both);
- *cancel*: `--runs` runs of `trigger -> http /hang`; once the server has the request, the
  run's scope is cancelled (t0); t1 is when the server reads the end of the connection.

    python -m bench.outbound [--nodes 200] [--repeat 10] [--runs 200]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import trio

from bench import report
from bench.results import Figure, Section
from flowtrux.engine.graph import Graph
from flowtrux.engine.scheduler import Limits, execute
from flowtrux.outbound.client import Outbound, open_outbound
from flowtrux.outbound.networks import AddressPolicy

BODY = b'{"ok":true,"items":[1,2,3]}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


@attrs.define
class Server:
    url: str = ""
    hanging: trio.Event = attrs.field(factory=trio.Event)  # a /hang request has arrived
    closed: trio.Event = attrs.field(factory=trio.Event)  # and its client closed the socket
    closed_at: float = 0.0

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some()
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                if head.startswith(b"GET /hang"):
                    self.hanging.set()
                    while await stream.receive_some():
                        pass
                    self.closed_at = time.perf_counter()
                    self.closed.set()
                    return
                await stream.send_all(ANSWER)


@asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    server = Server()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        yield server
        nursery.cancel_scope.cancel()


def http_chain(url: str, length: int) -> Graph:
    nodes: list[dict[str, Any]] = [{"id": "trigger", "type": "trigger"}]
    nodes += [{"id": f"n{i}", "type": "http", "config": {"url": url}} for i in range(length)]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return Graph.from_json(nodes, edges)


async def bare(url: str, length: int) -> float:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(length):
            response = await client.get(url)
            assert response.json()["ok"] is True
        return time.perf_counter() - started


async def through_nodes(outbound: Outbound, url: str, length: int) -> float:
    graph = http_chain(url, length)
    started = time.perf_counter()
    output = await execute(graph, {}, lambda event: None, Limits(), outbound=outbound)
    elapsed = time.perf_counter() - started
    assert output["body"]["ok"] is True, output
    return elapsed


async def cancel_once(outbound: Outbound, server: Server) -> float:
    """Seconds from the cancel of a run waiting on /hang to the server seeing its socket close."""
    server.hanging, server.closed = trio.Event(), trio.Event()
    graph = http_chain(f"{server.url}/hang", 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(execute, graph, {}, lambda event: None, Limits(), outbound=outbound)
        )
        await server.hanging.wait()
        cancelled = time.perf_counter()
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        await server.closed.wait()
    return server.closed_at - cancelled


async def benchmark(length: int, repeat: int, runs: int) -> dict[str, Any]:
    policy = AddressPolicy.parse("127.0.0.1/32")
    async with serving() as server, open_outbound(policy, "http://127.0.0.1:9/v1") as outbound:
        url = f"{server.url}/json"
        await bare(url, 10)  # warm both paths up
        await through_nodes(outbound, url, 10)
        floors, nodes = [], []
        for _ in range(repeat):
            floors.append(await bare(url, length) / length)
            nodes.append(await through_nodes(outbound, url, length) / length)
        cancels = [await cancel_once(outbound, server) for _ in range(runs)]
    return {
        "bare_us": {"min": min(floors) * 1e6, "median": statistics.median(floors) * 1e6},
        "node_us": {"min": min(nodes) * 1e6, "median": statistics.median(nodes) * 1e6},
        "cancel_ms": {
            "median": statistics.median(cancels) * 1e3,
            "p90": report.p90(cancels) * 1e3,
            "max": max(cancels) * 1e3,
        },
    }


async def measure(quick: bool) -> Section:
    """For `python -m bench`."""
    length, repeat, runs = (50, 3, 20) if quick else (200, 10, 200)
    found = await benchmark(length, repeat, runs)
    bare, node, cancel = found["bare_us"], found["node_us"], found["cancel_ms"]
    figures = (
        Figure("bare httpx GET, keep-alive (median)", bare["median"], "µs/request", None,
               f"min {bare['min']:.0f}"),
        Figure("the same GET by a chain of http nodes (median)", node["median"], "µs/request",
               None, f"min {node['min']:.0f}"),
        Figure("  http nodes / bare httpx", node["median"] / bare["median"], "x"),
        Figure("cancel of a waiting request -> its socket closed: p50", cancel["median"], "ms"),
        Figure("  p90", cancel["p90"], "ms", None, f"max {cancel['max']:.2f} ms"),
    )  # fmt: skip
    notes = (f"{repeat} rounds of {length} GETs, {runs} cancels; in the bench's process",)
    return Section("outbound", "Outbound requests (in process)", figures, notes, found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    report.quiet_logs()
    found = trio.run(benchmark, args.nodes, args.repeat, args.runs)
    ratio = found["node_us"]["median"] / found["bare_us"]["median"]
    print(
        report.table(
            ["case", "min µs/request", "median µs/request"],
            [
                ["bare httpx", found["bare_us"]["min"], found["bare_us"]["median"]],
                ["http nodes", found["node_us"]["min"], found["node_us"]["median"]],
            ],
        )
    )
    cancel = found["cancel_ms"]
    print(f"node/bare (medians): {ratio:.2f}")
    print(
        f"cancel -> socket closed, {args.runs} runs: median {cancel['median']:.2f} ms,"
        f" p90 {cancel['p90']:.2f} ms, max {cancel['max']:.2f} ms"
    )
    context = report.context("trio", "httpx", "httpcore")
    print(report.describe(context))
    report.print_json({**found, "ratio": round(ratio, 2), **context})


if __name__ == "__main__":
    main()
