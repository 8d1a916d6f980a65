"""Request bodies: strict JSON objects, read up to the configured limit."""

from contextlib import aclosing
from typing import Any

import trio
from starlette.requests import Request

from flowtrux import strict_json
from flowtrux.engine.paths import json_type
from flowtrux.errors import BadRequest, PayloadTooLarge
from flowtrux.http.params import declared_length
from flowtrux.http.services import services
from flowtrux.limiters import run_limiter

PARSE_IN_THREAD_BYTES = 64 * 1024  # larger bodies are parsed off the Trio thread
PARSES_AT_ONCE = 1  # threads parsing at once: the C parser holds the GIL for ~40-130 ms a MiB
_parsing: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("flowtrux_parsing")


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; `{}` for an empty body when not `required`.

    Raises PayloadTooLarge (413) past the limit, BadRequest (400) for anything but a strict JSON
    object (see `strict_json`).
    """
    raw = await _read(request, services(request).settings.max_body_bytes)
    if not raw.strip():
        if required:
            raise BadRequest("Send a JSON object as the request body.")
        return {}
    try:
        if len(raw) > PARSE_IN_THREAD_BYTES:
            limiter = run_limiter(_parsing, PARSES_AT_ONCE)
            value = await trio.to_thread.run_sync(strict_json.loads, raw, limiter=limiter)
        else:
            value = strict_json.loads(raw)
    except strict_json.NotStrictJson as exc:
        raise BadRequest(f"The request body {exc}.") from None
    if not isinstance(value, dict):
        raise BadRequest(f"The request body must be a JSON object, not a {json_type(value)}.")
    return value


async def _read(request: Request, limit: int) -> bytes:
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise PayloadTooLarge(limit)
    chunks, size = [], 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit)
            chunks.append(chunk)
    return b"".join(chunks)
