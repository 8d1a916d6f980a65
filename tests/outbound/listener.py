"""A plain HTTP server on every local address at once (IPv4 and IPv6 on one port), counting the
connections it accepts: what the guard refuses must never reach it."""

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@attrs.define
class Listener:
    port: int = 0
    connections: int = 0


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    """A listener on [::]:port, dual-stack, so 127.0.0.1, 127.0.0.2, ::1, 0.0.0.0 and every
    spelling of them reach it, answering `ok` to each request."""
    sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    await sock.bind(("::", 0))
    sock.listen()
    listener = Listener(sock.getsockname()[1])

    async def answer(stream: trio.SocketStream) -> None:
        listener.connections += 1
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request and (data := await stream.receive_some()):
                request += data
            await stream.send_all(ANSWER)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, answer, [trio.SocketListener(sock)])
        yield listener
        nursery.cancel_scope.cancel()
