"""An execution as JSON, written from the store's own text a page of logs at a time.

A run's history can hold thousands of logs of megabytes each. Parsing it to encode it again
would hold up the event loop, and every other tenant with it, for as long as that takes, and
hold the whole of it in memory: instead the stored JSON is sent on as it is, its logs read
(and encoded to UTF-8) in the store's threads one bounded page at a time.
"""

from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import trio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowtrux.http.disconnect import cancel_on_disconnect
from flowtrux.store.executions import ExecutionStore, LogPage
from flowtrux.strict_json import dumps, utf8

WRITE_BYTES = 64 * 1024


@attrs.frozen
class RawJson:
    """A value that is already JSON text, sent on as it is."""

    utf8: bytes


def execution_json_response(
    store: ExecutionStore,
    execution_id: str,
    fields: Mapping[str, Any],
    *,
    wrapped_in: str | None = None,
    first_page: LogPage | None = None,
) -> Response:
    """`{<fields>, "logs": [<every node log of the execution>]}`, inside `{wrapped_in: …}`
    when given. A RawJson field is written as it is. The logs start with `first_page` when
    given (read already, with the execution): when it holds them all, the answer is sent
    whole, with its length."""
    if first_page is not None and first_page.complete:
        return Response(
            _opening(fields, wrapped_in) + first_page.json + _closing(wrapped_in),
            media_type="application/json",
        )
    chunks = _chunks(store, execution_id, fields, wrapped_in, first_page)
    return _PagesResponse(_coalesced(chunks))


class _PagesResponse(Response):
    """JSON sent as `pages` come; the reading stops when the client leaves. (Starlette's
    StreamingResponse does the same through an anyio task group, which cost a run's answer as
    much as running two of its nodes.)"""

    media_type = "application/json"

    def __init__(self, pages: AsyncIterator[bytes]) -> None:
        self.pages = pages
        self.status_code = 200
        self.background = None
        self.init_headers()  # no length: it is sent chunked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on_disconnect, receive, nursery.cancel_scope)
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            async for page in self.pages:
                await send({"type": "http.response.body", "body": page, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()


async def _coalesced(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` joined into writes of about WRITE_BYTES: an answer of a few logs is one write
    (one pass through ASGI, h11 and the socket), a large one is still sent a page at a time."""
    pending: list[bytes] = []
    size = 0
    async for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= WRITE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


async def _chunks(
    store: ExecutionStore,
    execution_id: str,
    fields: Mapping[str, Any],
    wrapped_in: str | None,
    page: LogPage | None,
) -> AsyncIterator[bytes]:
    yield _opening(fields, wrapped_in)
    after, separator = 0, b""
    while True:
        page = page or await store.logs_after(execution_id, after)
        if page.json:
            yield separator + page.json
            separator = b","
        if page.complete:
            break
        after, page = page.last_position, None
    yield _closing(wrapped_in)


def _opening(fields: Mapping[str, Any], wrapped_in: str | None) -> bytes:
    """The answer up to its first log: `{<fields>,"logs":[`."""
    opening = b"{" if wrapped_in is None else b"{" + utf8(dumps(wrapped_in)) + b":{"
    members = b"".join(_member(name, value) + b"," for name, value in fields.items())
    return opening + members + b'"logs":['


def _closing(wrapped_in: str | None) -> bytes:
    return b"]}" if wrapped_in is None else b"]}}"


def _member(name: str, value: Any) -> bytes:
    text = value.utf8 if isinstance(value, RawJson) else utf8(dumps(value))
    return utf8(dumps(name)) + b":" + text
