"""Request bodies: strict JSON objects, read up to the configured limit."""

from contextlib import aclosing
from typing import Any

from starlette.requests import Request

from flowtrux import strict_json
from flowtrux.engine.paths import json_type
from flowtrux.errors import BadRequest, PayloadTooLarge
from flowtrux.http.params import declared_length
from flowtrux.http.services import services


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
        value = await strict_json.REQUEST_BODIES.parse(raw)
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
