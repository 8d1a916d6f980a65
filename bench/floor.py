"""The bare-Trio floor: a tiny HTTP/1.1 server with no framework, no store, no validation, that
streams what a run of N nodes would stream, so that FlowTrux's cost per node can be read against
what Trio itself costs on the same machine in the same run.

- `POST /chain?nodes=N`: one Trio task per node, one after the other (each task starts the next);
- `POST /fan_out?nodes=N`: N parallel tasks (at most 16 at a time, FlowTrux's default of
  `FLOWTRUX_MAX_CONCURRENT_NODES`), then a join task;
- each task sends two small JSON events (`node_start`, `node_complete`) over a chunked
  `text/event-stream` answer, between a `start` and a `complete` event; a writer task writes
  the events queued each time it runs, in one chunk;
- `POST /json`: a small JSON answer at once (what a load client can do at most).

Run as its own process (`python -m bench.floor` prints its port), as `flowtrux serve` is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import attrs
import trio

from bench import procs
from bench.rawhttp import Connection, ProtocolError

MAX_CONCURRENT_NODES = 16
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
JSON_BODY = b'{"success":true,"output":{"i":1}}'
JSON_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (
        len(JSON_BODY),
        JSON_BODY,
    )
)


@attrs.define(eq=False)
class Events:
    """One answer's events. `send` queues an event (a sync call, as FlowTrux's engine emits);
    a writer task writes whatever has queued in one chunk each time it runs (as FlowTrux writes
    the events at hand in one write)."""

    stream: trio.SocketStream
    pending: list[bytes] = attrs.Factory(list)
    ready: trio.Event = attrs.Factory(trio.Event)
    closed: bool = False
    sequence: int = 0

    def send(self, name: str, data: object) -> None:
        self.sequence += 1
        self.pending.append(
            f"id: {self.sequence}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode()
        )
        self.ready.set()

    def close(self) -> None:
        """The writer returns once it has written what is queued."""
        self.closed = True
        self.ready.set()

    async def write(self) -> None:
        while True:
            await self.ready.wait()
            self.ready = trio.Event()
            blocks, self.pending = b"".join(self.pending), []
            if blocks:
                await self.stream.send_all(b"%x\r\n%s\r\n" % (len(blocks), blocks))
            if self.closed and not self.pending:
                return

    def node(self, index: int) -> None:
        node_id = f"t{index}"
        self.send("node_start", {"nodeId": node_id, "nodeType": "transform"})
        log = {"nodeId": node_id, "status": "success", "input": {}, "output": {"i": 1}}
        self.send("node_complete", log)


async def chain(events: Events, nodes: int) -> None:
    async def node(nursery: trio.Nursery, index: int) -> None:
        events.node(index)
        if index + 1 < nodes:
            nursery.start_soon(node, nursery, index + 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node, nursery, 0)


async def fan_out(events: Events, nodes: int) -> None:
    limiter = trio.CapacityLimiter(MAX_CONCURRENT_NODES)

    async def node(index: int) -> None:
        async with limiter:
            events.node(index)

    events.node(0)
    async with trio.open_nursery() as nursery:
        for index in range(1, nodes - 1):
            nursery.start_soon(node, index)
    events.node(nodes - 1)


SHAPES: dict[str, Callable[[Events, int], Awaitable[None]]] = {
    "/chain": chain,
    "/fan_out": fan_out,
}


async def stream_run(stream: trio.SocketStream, path: str) -> None:
    url = urlsplit(path)
    nodes = int(parse_qs(url.query)["nodes"][0])
    await stream.send_all(STREAM_HEAD)
    events = Events(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(events.write)
        events.send("start", {"executionId": "floor"})
        await SHAPES[url.path](events, nodes)
        events.send("complete", {"success": True, "executionId": "floor"})
        events.close()
    await stream.send_all(b"0\r\n\r\n")


async def handle(stream: trio.SocketStream) -> None:
    try:
        await _serve(Connection(stream))
    except (ProtocolError, trio.BrokenResourceError):
        pass  # the client closed or reset the connection
    finally:
        await stream.aclose()


async def _serve(connection: Connection) -> None:
    stream = connection.stream
    while True:
        head_end = await _request_head(connection)
        head = connection.buffer[:head_end].decode("latin-1")
        connection.buffer = connection.buffer[head_end + 4 :]
        await _skip_body(connection, head)
        path = head.split(" ", 2)[1]
        if path == "/json":
            await stream.send_all(JSON_ANSWER)
        else:
            await stream_run(stream, path)


async def _request_head(connection: Connection) -> int:
    while (end := connection.buffer.find(b"\r\n\r\n")) < 0:
        connection.buffer += await connection.receive()
    return end


async def _skip_body(connection: Connection, head: str) -> None:
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(connection.buffer) < length:
        connection.buffer += await connection.receive()
    connection.buffer = connection.buffer[length:]


async def main() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(handle, listeners)


@attrs.frozen
class Floor:
    process: trio.Process
    port: int


@asynccontextmanager
async def running_floor() -> AsyncIterator[Floor]:
    """The floor server in its own process."""
    command = [sys.executable, "-m", "bench.floor"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(64)
        yield Floor(process, int(line))
    finally:
        await procs.stop(process)


if __name__ == "__main__":
    trio.run(main)
