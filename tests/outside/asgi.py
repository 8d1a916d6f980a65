"""What the servers outside FlowTrux share: serving an ASGI app with real hypercorn (trio worker)
on 127.0.0.1, port 0; reading a request and answering one in raw ASGI; and noticing when a
client leaves before its answer has ended, with the moment it did."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import cast
from urllib.parse import parse_qsl

import attrs
import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import Framework
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def serve(nursery: trio.Nursery, app: ASGIApp) -> str:
    """Serve `app` in `nursery` (until it is cancelled, as pytest-trio's `nursery` fixture is at
    the end of a test); the base URL, `http://127.0.0.1:PORT`."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    framework = cast(Framework, app)  # an ASGI app; hypercorn's types are narrower
    urls: list[str] = await nursery.start(partial(hypercorn.trio.serve, framework, config))
    return urls[0]


def header_dict(scope: Scope) -> dict[str, str]:
    """The request's headers, every one, by lower-case name; a repeated header's values joined
    as HTTP joins them (`; ` for the cookies HTTP/2 sends apart, `, ` otherwise)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    return headers


def query_params(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the last value of a repeated one)."""
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


async def read_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the request's body whole; return it and a `receive` for the app that gives it again,
    in one message, then goes on with what the server gives (the client's disconnect). A client
    that left mid-body: what was read, and a `receive` that answers only `http.disconnect`."""
    pieces: list[bytes] = []
    left: Message | None = None
    while True:
        message = await receive()
        if message["type"] != "http.request":
            left = message
            break
        pieces.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(pieces)
    unread = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if left is not None:
            return left
        if unread:
            return unread.pop()
        return await receive()

    return body, replay


async def start(send: Send, status: int, headers: dict[str, str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    """A whole answer, with its Content-Length."""
    await start(send, status, {**headers, "content-length": str(len(body))})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """ASGI's lifespan protocol, for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@attrs.define(eq=False)
class DisconnectLog:
    """When each named request's client left before its answer ended: request id →
    `trio.current_time()` when the server saw its connection (or HTTP/2 stream) closed."""

    disconnects: dict[str, float] = attrs.Factory(dict)
    _recorded: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)

    def record_disconnect(self, request_id: str) -> None:
        """Note that the client of `request_id` has left, now (the first time only)."""
        self.disconnects.setdefault(request_id, trio.current_time())
        self._recorded.set()
        self._recorded = trio.Event()

    async def wait_disconnect(self, request_id: str, timeout: float) -> float:  # noqa: ASYNC109
        """The moment the client of `request_id` left, waiting for it `timeout` seconds at most
        (`trio.TooSlowError` past that)."""
        with trio.fail_after(timeout):
            while request_id not in self.disconnects:
                await self._recorded.wait()
        return self.disconnects[request_id]


async def unless_client_leaves(
    receive: Receive, answer: Callable[[], Awaitable[None]], client_left: Callable[[], None]
) -> None:
    """Run `answer` while watching `receive` for the client's disconnect; if the client leaves
    first, `client_left` is called at that moment and `answer` is stopped.

    Under FlowTrux's hypercorn corrections (flowtrux/http/hypercorn_fixes/app_inbox.py, applied
    to the whole process once a test has served FlowTrux) the server cancels an app whose client
    left mid-answer rather than telling it, so `answer` ending unfinished counts as the client
    leaving too (as does the server stopping, which comes after the test)."""
    answered = False
    try:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                client_left()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await answer()
            answered = True
            nursery.cancel_scope.cancel()
    finally:
        if not answered:
            client_left()
