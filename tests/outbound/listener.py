"""A plain HTTP server on every local address at once (IPv4 and IPv6 on one port), counting the
connections it accepts (what the guard refuses must never reach it), and answering each request
with bytes a test writes itself: whatever a careless or hostile server might send."""

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def answer(status: str, headers: dict[str, str], body: bytes, length: bool = True) -> bytes:
    """An HTTP/1.1 answer, with `Content-Length` unless `length` is False (a HEAD's answer
    announces what it does not send)."""
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join([*lines, "", ""]).encode("latin-1") + body


@attrs.define
class Listener:
    port: int = 0
    answer: bytes = OK  # to every request
    connections: int = 0
    answered: trio.Event = attrs.field(factory=trio.Event)  # a whole answer was sent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def listening(answer: bytes = OK) -> AsyncIterator[Listener]:
    """A listener on [::]:port, dual-stack, so 127.0.0.1, 127.0.0.2, ::1, 0.0.0.0 and every
    spelling of them reach it, answering `answer` to each request."""
    sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    await sock.bind(("::", 0))
    sock.listen()
    listener = Listener(sock.getsockname()[1], answer)

    async def serve(stream: trio.SocketStream) -> None:
        listener.connections += 1
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request and (data := await stream.receive_some()):
                request += data
            await stream.send_all(listener.answer)
            listener.answered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [trio.SocketListener(sock)])
        yield listener
        nursery.cancel_scope.cancel()
