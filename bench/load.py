"""A light HTTP/1.1 load client: keep-alive connections on raw sockets, each sending one request
after another for a fixed time, in processes of their own (`python -m bench.load` reads its
spec on stdin and writes what it saw on stdout), so that the figure is the server's.

Every process counts the answers completed within one window of wall-clock time, the same for
all of them; what comes before it is a warm-up. An answer that is not a 200 holding `expect` is
an error (counted, the first one kept); a connection the server closes is opened again.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import attrs
import trio

from bench.rawhttp import Connection, ProtocolError

WARMUP_S = 1.0  # from the processes' start to the window's: room for Python's start-up too


@attrs.frozen
class LoadSpec:
    port: int
    request: bytes
    expect: bytes  # a successful answer's body holds this
    connections: int
    start_at: float  # time.time() when the window opens
    seconds: float

    def to_json(self) -> str:
        fields = attrs.asdict(self)
        fields["request"], fields["expect"] = self.request.hex(), self.expect.hex()
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        fields: dict[str, Any] = json.loads(text)
        fields["request"] = bytes.fromhex(fields["request"])
        fields["expect"] = bytes.fromhex(fields["expect"])
        return cls(**fields)


@attrs.frozen
class LoadResult:
    latencies_ms: list[float]  # each answer completed within the window
    errors: int = 0
    first_error: str = ""
    client_cpu_s: list[float] = attrs.Factory(list)  # each process's CPU time in the window

    @classmethod
    def combined(cls, results: list[LoadResult]) -> LoadResult:
        errors = [result for result in results if result.errors]
        return cls(
            [latency for result in results for latency in result.latencies_ms],
            sum(result.errors for result in results),
            errors[0].first_error if errors else "",
            [cpu for result in results for cpu in result.client_cpu_s],
        )


@attrs.define
class Counter:
    spec: LoadSpec
    latencies_ms: list[float] = attrs.Factory(list)
    errors: int = 0
    first_error: str = ""

    def in_window(self) -> bool:
        return self.spec.start_at <= time.time() <= self.spec.start_at + self.spec.seconds

    def error(self, what: str) -> None:
        if self.in_window():
            self.errors += 1
            self.first_error = self.first_error or what


async def keep_sending(counter: Counter) -> None:
    """One connection's requests, one after the other, until cancelled."""
    spec, connection = counter.spec, None
    while True:
        try:
            if connection is None:
                connection = Connection(await trio.open_tcp_stream("127.0.0.1", spec.port))
            sent = time.perf_counter()
            await connection.stream.send_all(spec.request)
            answer = await connection.response()
            latency_ms = (time.perf_counter() - sent) * 1000
        except (OSError, trio.BrokenResourceError, ProtocolError) as exc:
            counter.error(f"{type(exc).__name__}: {exc}")
            connection = None
            await trio.sleep(0.01)
            continue
        if answer.head.status != 200 or spec.expect not in answer.body:
            counter.error(f"{answer.head.status} {answer.body[:200]!r}")
        elif counter.in_window():
            counter.latencies_ms.append(latency_ms)
        if answer.head.closes:
            await connection.stream.aclose()
            connection = None


async def run(spec: LoadSpec) -> LoadResult:
    counter = Counter(spec)
    end = trio.current_time() + spec.start_at + spec.seconds - time.time()
    with trio.move_on_at(end):
        async with trio.open_nursery() as nursery:
            for _ in range(spec.connections):
                nursery.start_soon(keep_sending, counter)
            await trio.sleep(max(0.0, spec.start_at - time.time()))
            cpu_at_start = time.process_time()
    cpu = time.process_time() - cpu_at_start
    return LoadResult(counter.latencies_ms, counter.errors, counter.first_error, [cpu])


async def drive(
    port: int, request: bytes, expect: bytes, connections: int, seconds: float, processes: int
) -> LoadResult:
    """`connections` keep-alive clients shared among `processes` client processes, for
    `seconds` after a warm-up."""
    start_at = time.time() + WARMUP_S
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    results: list[LoadResult] = []

    async def one(share: int) -> None:
        spec = LoadSpec(port, request, expect, share, start_at, seconds)
        done = await trio.run_process(
            [sys.executable, "-m", "bench.load"],
            stdin=spec.to_json().encode(),
            capture_stdout=True,
        )
        results.append(LoadResult(**json.loads(done.stdout)))

    async with trio.open_nursery() as nursery:
        for share in shares:
            nursery.start_soon(one, share)
    return LoadResult.combined(results)


def main() -> None:
    result = trio.run(run, LoadSpec.from_json(sys.stdin.read()))
    print(json.dumps(attrs.asdict(result)))


if __name__ == "__main__":
    main()
