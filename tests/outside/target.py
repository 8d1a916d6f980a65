"""An HTTP target for FlowTrux's `http` node: a real server (hypercorn, trio worker) with routes
that echo, fail, redirect, answer slowly, stream without end or bomb, and that records every
request it receives and when each named client (`?rid=...`) left before its answer ended.

Routes (any of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS):

- `/json`: 200, an echo: `{"method", "path", "query": {k: v}, "headers": {...}, "body": <the
  body parsed as JSON, else as text, null when empty>}`;
- `/text`: 200 text/plain `hello from the target`;
- `/status/{code}`: that status, `{"status": code}`; `/retry-after`: 429 with `Retry-After: 1`;
- `/slow?ms=N&rid=X`: `{"waited": N}` after N ms, or nothing if the client leaves first;
- `/slow-body?chunks=N&ms=M&rid=X`: 200 and `[0` at once, then `,1`, `,2`, ... every M ms, until
  the JSON array `[0,...,N-1]` is whole (N ≥ 1; by default 5 pieces, 100 ms apart);
- `/flaky/{key}?failures=N&status=S`: the first N requests for `key` get S (503 by default),
  `{"status": S, "attempt": k}`, later ones 200 `{"attempt": k}` (k counts from 1);
- `/redirect?to=URL&status=S`: S (302 by default) to URL; `/hops/{n}`: a redirect to
  `/hops/{n-1}`, and `/hops/0` answers as `/json` does;
- `/huge?bytes=N&length=yes|no&rid=X`: the JSON string `"xxx…"`, N ≥ 2 bytes in all, in pieces of
  64 KiB, with Content-Length when `length=yes` (the default) and chunked otherwise; `sent[X]`
  is how much of it the server has written (so far, or before the client left);
- `/gzip-bomb`: JSON, `Content-Encoding: gzip`, about 50 KB as sent and 50 MiB decoded;
- `/set-cookie`: 200 with `Set-Cookie: session=secret-cookie-value` and
  `X-Api-Token: token-in-response`.
"""

import functools
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.outside.asgi import (
    DisconnectLog,
    header_dict,
    query_params,
    read_body,
    respond,
    serve,
    start,
    unless_client_leaves,
)

PIECE = 64 * 1024  # /huge writes its body in pieces of this size
BOMB_SIZE = 50 * 1024 * 1024  # /gzip-bomb's body, decoded

JSON = {"content-type": "application/json"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # every route takes these
RawRoute = Callable[[Scope, Receive, Send], Awaitable[None]]


@attrs.frozen
class Received:
    """A request as the target received it."""

    method: str
    path: str
    query: str  # the query string as sent, without its `?`
    headers: dict[str, str]  # every header, by lower-case name
    body: bytes  # what arrived of it, if the client left mid-body
    at: float  # `trio.current_time()` when its headers arrived


@attrs.define(eq=False)
class Target(DisconnectLog):
    """The target's state; an ASGI app. `url` is set once it is served (`serve_target`)."""

    url: str = ""
    requests: list[Received] = attrs.Factory(list)
    sent: dict[str, int] = attrs.Factory(dict)  # /huge: request id → bytes written so far
    attempts: dict[str, int] = attrs.Factory(dict)  # /flaky: key → requests so far
    _routes: Starlette = attrs.field(init=False, repr=False)
    _raw_routes: dict[str, RawRoute] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._routes = Starlette(
            routes=[
                Route("/json", echo, methods=METHODS),
                Route("/text", self._text, methods=METHODS),
                Route("/status/{code:int}", self._status, methods=METHODS),
                Route("/retry-after", self._retry_after, methods=METHODS),
                Route("/flaky/{key}", self._flaky, methods=METHODS),
                Route("/redirect", self._redirect, methods=METHODS),
                Route("/hops/{n:int}", self._hops, methods=METHODS),
                Route("/gzip-bomb", self._gzip_bomb, methods=METHODS),
                Route("/set-cookie", self._set_cookie, methods=METHODS),
            ]
        )
        self._raw_routes = {"/slow": self._slow, "/slow-body": self._slow_body, "/huge": self._huge}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._routes(scope, receive, send)
            return
        at = trio.current_time()
        body, receive = await read_body(receive)
        self.requests.append(
            Received(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                headers=header_dict(scope),
                body=body,
                at=at,
            )
        )
        route = self._raw_routes.get(scope["path"], self._routes)
        await route(scope, receive, send)

    async def _text(self, request: Request) -> Response:
        return PlainTextResponse("hello from the target")

    async def _status(self, request: Request) -> Response:
        code: int = request.path_params["code"]
        return JSONResponse({"status": code}, status_code=code)

    async def _retry_after(self, request: Request) -> Response:
        return JSONResponse({"status": 429}, status_code=429, headers={"Retry-After": "1"})

    async def _flaky(self, request: Request) -> Response:
        key: str = request.path_params["key"]
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        if attempt <= int(request.query_params.get("failures", "1")):
            status = int(request.query_params.get("status", "503"))
            return JSONResponse({"status": status, "attempt": attempt}, status_code=status)
        return JSONResponse({"attempt": attempt})

    async def _redirect(self, request: Request) -> Response:
        status = int(request.query_params.get("status", "302"))
        return RedirectResponse(request.query_params["to"], status_code=status)

    async def _hops(self, request: Request) -> Response:
        n: int = request.path_params["n"]
        if n > 0:
            return RedirectResponse(f"/hops/{n - 1}", status_code=302)
        return await echo(request)

    async def _gzip_bomb(self, request: Request) -> Response:
        headers = {"Content-Encoding": "gzip"}
        body = await trio.to_thread.run_sync(gzip_bomb)
        return Response(body, media_type="application/json", headers=headers)

    async def _set_cookie(self, request: Request) -> Response:
        headers = {"Set-Cookie": "session=secret-cookie-value", "X-Api-Token": "token-in-response"}
        return JSONResponse({"cookie": "set"}, headers=headers)

    async def _slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query_params(scope)
        ms = int(params.get("ms", "0"))

        async def answer() -> None:
            await trio.sleep(ms / 1000)
            await respond(send, 200, json.dumps({"waited": ms}).encode(), JSON)

        await unless_client_leaves(receive, answer, self._left(params.get("rid")))

    async def _slow_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query_params(scope)
        pieces = ["[0", *(f",{i}" for i in range(1, int(params.get("chunks", "5"))))]
        pieces[-1] += "]"
        pause_s = int(params.get("ms", "100")) / 1000

        async def answer() -> None:
            await start(send, 200, JSON)
            for i, piece in enumerate(pieces):
                if i > 0:
                    await trio.sleep(pause_s)
                more = i < len(pieces) - 1
                await send(
                    {"type": "http.response.body", "body": piece.encode(), "more_body": more}
                )

        await unless_client_leaves(receive, answer, self._left(params.get("rid")))

    async def _huge(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query_params(scope)
        size = int(params["bytes"])
        rid = params.get("rid")
        headers = {**JSON, "content-length": str(size)} if params.get("length") != "no" else JSON

        async def answer() -> None:
            await start(send, 200, headers)
            for offset in range(0, size, PIECE):
                piece = huge_piece(size, offset)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if rid is not None:
                    self.sent[rid] = offset + len(piece)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await unless_client_leaves(receive, answer, self._left(rid))

    def _left(self, rid: str | None) -> Callable[[], None]:
        """What to do when the client of the request named `rid` (if it is) leaves."""

        def left() -> None:
            if rid is not None:
                self.record_disconnect(rid)

        return left


async def echo(request: Request) -> Response:
    """/json's answer: what the request was."""
    body = await request.body()
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": header_dict(request.scope),
            "body": parsed,
        }
    )


def huge_piece(size: int, offset: int) -> bytes:
    """The piece at `offset` of /huge's body of `size` bytes, `"xxx…"`."""
    piece = bytearray(b"x" * min(PIECE, size - offset))
    if offset == 0:
        piece[0:1] = b'"'
    if offset + len(piece) == size:
        piece[-1:] = b'"'
    return bytes(piece)


@functools.cache
def gzip_bomb() -> bytes:
    """A JSON string of BOMB_SIZE bytes, gzipped (built once, in about 0.3 s of CPU)."""
    gzip = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"x" * (1024 * 1024)
    parts = [gzip.compress(b'"')]
    parts += [gzip.compress(block) for _ in range(BOMB_SIZE // len(block) - 1)]
    parts += [gzip.compress(block[:-2]), gzip.compress(b'"'), gzip.flush()]
    return b"".join(parts)


async def serve_target(nursery: trio.Nursery) -> Target:
    """A target served in `nursery`, until it is cancelled."""
    target = Target()
    target.url = await serve(nursery, target)
    return target


@pytest.fixture
async def target(nursery: trio.Nursery) -> Target:
    """A target for the test, served in pytest-trio's `nursery`."""
    return await serve_target(nursery)
