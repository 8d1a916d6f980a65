"""Just enough HTTP/1.1 for clients whose own cost must stay small beside the server's: a
response's head read off a socket, its body by Content-Length or chunked, and chunked bodies
decoded as they arrive (a stream's events)."""

from __future__ import annotations

import attrs
import trio

READ_SIZE = 1 << 16


class ProtocolError(RuntimeError):
    pass


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request as bytes (a POST's body as JSON)."""
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method == "POST":
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@attrs.define
class Dechunker:
    """Decodes a chunked body as its bytes come; `ended` once the last chunk is in."""

    pending: bytes = b""
    ended: bool = False

    def feed(self, data: bytes) -> bytes:
        buffer, position, out = self.pending + data, 0, []
        while not self.ended:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            size = int(buffer[position:line_end].split(b";", 1)[0], 16)
            end = line_end + 2 + size
            if len(buffer) < end + 2:
                break
            out.append(buffer[line_end + 2 : end])
            position = end + 2
            self.ended = size == 0
        self.pending = buffer[position:]
        return b"".join(out)


@attrs.frozen
class Head:
    status: int
    headers: dict[bytes, bytes]  # names in lower case

    @property
    def chunked(self) -> bool:
        return b"chunked" in self.headers.get(b"transfer-encoding", b"").lower()

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"


@attrs.frozen
class Response:
    head: Head
    body: bytes


@attrs.define
class Connection:
    """A client's side of one HTTP/1.1 connection: what it received and has not used yet."""

    stream: trio.SocketStream
    buffer: bytes = b""

    async def receive(self) -> bytes:
        data = await self.stream.receive_some(READ_SIZE)
        if not data:
            raise ProtocolError("the server closed the connection")
        return data

    async def head(self) -> Head:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self.buffer += await self.receive()
        lines = self.buffer[:end].split(b"\r\n")
        self.buffer = self.buffer[end + 4 :]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return Head(int(parts[1]), headers)

    async def response(self) -> Response:
        """The next whole response (its body by Content-Length, or chunked)."""
        head = await self.head()
        if head.chunked:
            return Response(head, await self._chunked_body())
        length = int(head.headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self.buffer += await self.receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Response(head, body)

    async def _chunked_body(self) -> bytes:
        decoder, parts = Dechunker(), []
        data, self.buffer = self.buffer, b""
        while True:
            parts.append(decoder.feed(data))
            if decoder.ended:
                self.buffer = decoder.pending
                return b"".join(parts)
            data = await self.receive()
