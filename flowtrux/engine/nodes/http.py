"""`http`: one request through the guarded client; its output is `{status, headers, body}`.

Templates fill the URL, headers, query and body. A JSON body is sent as JSON, a string as text.
The answer's body is parsed when it says it is JSON, else read as text. A status outside 2xx is
an error unless `acceptStatus` lists it. The log lists every request made (`externalRequests`,
redirects and retries included), with URLs redacted.
"""

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from flowtrux import strict_json
from flowtrux.engine.errors import NodeError
from flowtrux.engine.limits import MAX_MS
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType
from flowtrux.engine.paths import json_type
from flowtrux.outbound.client import Exchange, Outbound, ReadLimit
from flowtrux.outbound.errors import OutboundError
from flowtrux.outbound.secrets import redact_headers

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024  # the most `maxResponseBytes` may say
ERROR_BODY_CHARS = 500  # of a failed answer's body, in the node's error

Render = Callable[[Any], Any]  # fills a value's templates
_SCALAR = {"type": ["string", "number", "boolean"]}
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "method": {"enum": list(METHODS)},
        "url": {"type": "string", "minLength": 1},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "query": {
            "type": "object",
            "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
        },
        "body": {},
        "timeoutMs": {"type": "integer", "minimum": 1, "maximum": MAX_MS},
        "maxResponseBytes": {"type": "integer", "minimum": 1, "maximum": MAX_RESPONSE_BYTES},
        "acceptStatus": {
            "type": "array",
            "items": {"type": "integer", "minimum": 100, "maximum": 599},
        },
    },
    "required": ["url"],
    "additionalProperties": False,
}


async def run(ctx: NodeContext) -> NodeResult:
    answer = await send(ctx, ctx.config, ctx.render)
    status = answer.response.status_code
    if not answer.response.is_success and status not in ctx.config.get("acceptStatus", ()):
        raise NodeError(_status_error(answer), debug=debug_fields(ctx.exchange))
    return NodeResult(answer.output, debug_fields(ctx.exchange))


@attrs.frozen
class Answer:
    response: httpx.Response
    raw: bytes
    output: dict[str, Any]  # {status, headers, body}, as the node's output shows it


async def send(ctx: NodeContext, spec: Mapping[str, Any], render: Render) -> Answer:
    """Send the request `spec` describes (an `http` node's config, or an agent tool's `http`),
    its templates filled by `render`, through the guarded client. Raises NodeError: for a
    refused address, never to be retried."""
    outbound = ctx.client()
    try:
        request = _request(outbound, spec, render)
        timeout_ms = int(spec.get("timeoutMs", DEFAULT_TIMEOUT_MS))
        with trio.move_on_after(timeout_ms / 1000) as timer:
            response, raw = await outbound.fetch(request, ctx.exchange, _read_limit(ctx, spec))
        if timer.cancelled_caught:
            why = ctx.exchange.queued or "no complete answer came"
            raise OutboundError(f"timed out after {timeout_ms} ms (timeoutMs): {why}")
    except OutboundError as exc:
        told = debug_fields(ctx.exchange)
        raise NodeError(str(exc), retryable=exc.retryable, debug=told) from None
    output = {
        "status": response.status_code,
        "headers": redact_headers(response.headers.multi_items()),
        "body": await _body(response, raw),
    }
    return Answer(response, raw, output)


def _read_limit(ctx: NodeContext, spec: Mapping[str, Any]) -> ReadLimit:
    """`maxResponseBytes`, or less: past what a node's output may hold the node fails anyway,
    so that much is never read (nor held, nor parsed)."""
    asked = int(spec.get("maxResponseBytes", DEFAULT_MAX_RESPONSE_BYTES))
    if asked <= ctx.sizes.limit:
        return ReadLimit(asked, "maxResponseBytes")
    return output_limit(ctx)


def output_limit(ctx: NodeContext) -> ReadLimit:
    return ReadLimit(ctx.sizes.limit, "FLOWTRUX_MAX_OUTPUT_BYTES, the most a node's output holds")


def debug_fields(exchange: Exchange) -> dict[str, Any]:
    return {"externalRequests": exchange.logged()}


def _request(outbound: Outbound, spec: Mapping[str, Any], render: Render) -> httpx.Request:
    url = outbound.url(_text(render(spec["url"]), "url"))
    body = render(spec["body"]) if "body" in spec else None
    headers = _headers(render(spec.get("headers", {})))
    content, content_type = _content(body)
    if content_type and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = content_type
    return outbound.build(
        spec.get("method", "GET"),
        url,
        headers=headers,
        params=_query(render(spec.get("query", {}))),
        content=content,
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise NodeError(f"'{field}' must render to a string, not a {json_type(value)}")
    return value


def _headers(rendered: Mapping[str, Any]) -> dict[str, str]:
    return {name: _text(value, f"headers.{name}") for name, value in rendered.items()}


def _query(rendered: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Query values as text: numbers as JSON writes them, booleans `true`/`false`."""
    query: dict[str, str | list[str]] = {}
    for name, value in rendered.items():
        if isinstance(value, list):
            query[name] = [_query_value(item, name) for item in value]
        else:
            query[name] = _query_value(value, name)
    return query


def _query_value(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return strict_json.dumps(value)
    raise NodeError(f"query value '{name}' must render to text, a number or a boolean")


def _content(body: Any) -> tuple[bytes | None, str | None]:
    """The request body and its default content type: text as itself, any other value as
    JSON."""
    if body is None:
        return None, None
    if isinstance(body, str):
        return strict_json.utf8(body), "text/plain; charset=utf-8"
    return strict_json.utf8(strict_json.dumps(body)), "application/json"


async def _body(response: httpx.Response, raw: bytes) -> Any:
    """The answer's body: parsed when it says it is JSON, else text; None when empty."""
    if not raw:
        return None
    if _is_json(response.headers.get("content-type", "")):
        try:
            return await strict_json.ANSWERS.parse(raw)
        except strict_json.NotStrictJson as exc:
            raise NodeError(f"the response says it is JSON, but its body {exc}") from None
    return _text_of(raw, response.charset_encoding)


def _text_of(raw: bytes, charset: str | None) -> str:
    """`raw` as text in its charset (UTF-8 when it names none, or none Python decodes text
    with), what does not decode replaced, and so is any lone surrogate a charset such as UTF-7
    can spell: the text must be storable."""
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError, TypeError):  # unknown, or not a text encoding (rot13)
        text = raw.decode("utf-8", errors="replace")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _status_error(answer: Answer) -> str:
    response, raw = answer.response, answer.raw
    said = raw[: ERROR_BODY_CHARS * 4].decode("utf-8", errors="replace")[:ERROR_BODY_CHARS]
    phrase = response.reason_phrase or httpx.codes.get_reason_phrase(response.status_code)
    reason = f" {phrase}" if phrase else ""
    told = f": {said}" if said.strip() else ""
    return f"the server answered {response.status_code}{reason}{told}"


HTTP = NodeType("http", CONFIG_SCHEMA, run)
