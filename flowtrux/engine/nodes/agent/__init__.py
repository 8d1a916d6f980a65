"""`agent`: a model over the OpenAI-compatible Chat Completions protocol, with tools.

Each round sends the conversation to `{baseUrl}/chat/completions`. When the model calls tools,
each call's request is sent through the guarded client with the model's arguments as
`{{args.…}}`, and its result goes back as a `tool` message; when it answers, the answer is the
node's output (parsed, for `responseFormat: json`). With `stream: true` the answer's text goes
out piece by piece as `node_delta` events while it is written.

The operator's `FLOWTRUX_LLM_BASE_URL` is trusted (reached without the guard); a `baseUrl` of
the workflow's own goes through the guard like any URL. A key from the server's environment
(`apiKeyEnv`) is only ever sent to the operator's URL: a workflow cannot send the server's keys
to a server of its choosing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import httpx
import trio
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # its parser, without its reading
from jsonschema import Draft202012Validator, SchemaError

from flowtrux import strict_json
from flowtrux.engine.errors import MissingPath, NodeError
from flowtrux.engine.nodes.agent.chat import Assembly, Reply, ToolCall, completion, provider_error
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType
from flowtrux.engine.nodes.http import CONFIG_SCHEMA as HTTP_SCHEMA
from flowtrux.engine.nodes.http import output_limit, send
from flowtrux.engine.paths import root_of
from flowtrux.engine.templates import template_paths, template_problems
from flowtrux.outbound.client import Download, ReadLimit
from flowtrux.outbound.errors import OutboundError

DEFAULT_MAX_ITERATIONS = 5
MAX_ITERATIONS = 50
ROUND_TIMEOUT_S = 300.0  # for one answer of the provider
TOOL_NAME = "^[A-Za-z0-9_-]{1,64}$"
JSON_HINT = "Answer with a JSON object."
STREAM_FRAMING = 64  # how much larger than the answer its stream may be
MAX_EVENT_CHARS = 1024 * 1024  # of one event of a stream
KEY_VARIABLE = "^[A-Z][A-Z0-9_]*_API_KEY$"  # apiKeyEnv names no other variable of the server

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "system": {"type": "string"},
        "prompt": {"type": "string", "minLength": 1},
        "tools": {
            "type": "array",
            "maxItems": 128,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": TOOL_NAME},
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                    "http": HTTP_SCHEMA,
                },
                "required": ["name", "http"],
                "additionalProperties": False,
            },
        },
        "responseFormat": {"enum": ["text", "json"]},
        "maxIterations": {"type": "integer", "minimum": 1, "maximum": MAX_ITERATIONS},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "baseUrl": {"type": "string", "minLength": 1},
        "apiKeyEnv": {"type": "string", "pattern": KEY_VARIABLE},
        "stream": {"type": "boolean"},
    },
    "required": ["model", "prompt"],
    "additionalProperties": False,
}


@attrs.frozen
class _Provider:
    """Where the rounds go, and how."""

    url: httpx.URL  # …/chat/completions
    trusted: bool  # the operator's own endpoint
    headers: Mapping[str, str]


@attrs.define
class _Conversation:
    """The rounds so far, as the node's log tells them. It goes to the model whole each round
    and the log must hold it, so it may grow no larger than a node's output
    (FLOWTRUX_MAX_OUTPUT_BYTES)."""

    model: str
    limit: int
    messages: list[dict[str, Any]] = attrs.field(factory=list)
    usage: Counter[str] = attrs.field(factory=Counter)
    tool_calls: list[dict[str, Any]] = attrs.field(factory=list)
    size: int = 0  # of the messages, as JSON

    def add(self, message: dict[str, Any]) -> None:
        """Raises NodeError when the conversation would grow past its limit."""
        self.size += len(strict_json.utf8(strict_json.dumps(message))) + 1
        if self.size > self.limit:
            raise NodeError(
                f"the conversation with the model is larger than {self.limit:,} bytes of JSON,"
                " the limit of a node's output (FLOWTRUX_MAX_OUTPUT_BYTES)",
                retryable=False,
            )
        self.messages.append(message)

    def debug(self) -> dict[str, Any]:
        request = {"model": self.model, "messages": self.messages, "usage": dict(self.usage)}
        return {"llmRequest": request, "toolCalls": self.tool_calls}


async def run(ctx: NodeContext) -> NodeResult:
    config = ctx.config
    provider = _provider(ctx)
    conversation = _Conversation(_text(ctx, "model"), ctx.sizes.limit)
    tools = {tool["name"]: tool for tool in config.get("tools", [])}
    rounds = int(config.get("maxIterations", DEFAULT_MAX_ITERATIONS))
    try:
        for message in _opening(ctx):
            conversation.add(message)
        round_number = 0
        while True:
            round_number += 1
            reply = await _ask(ctx, provider, _payload(ctx, conversation))
            conversation.usage.update(reply.usage)
            conversation.add(reply.to_message())
            reply.check_finished()
            if not reply.tool_calls:
                return NodeResult(_answer(ctx, reply), conversation.debug())
            if round_number == rounds:  # its results could not go back: none is sent
                raise NodeError(
                    f"the model still called tools in round {rounds}, the last (maxIterations)"
                )
            for call in reply.tool_calls:
                result = await _call_tool(ctx, tools, call, conversation)
                content = strict_json.dumps(result)
                conversation.add({"role": "tool", "tool_call_id": call.id, "content": content})
    except NodeError as exc:  # the log tells the rounds so far
        raise NodeError(
            str(exc),
            retryable=exc.retryable,
            retry_after_s=exc.retry_after_s,
            debug={**conversation.debug(), **exc.debug},
        ) from None


def _provider(ctx: NodeContext) -> _Provider:
    outbound = ctx.client()
    operator = outbound.llm_base_url
    given = ctx.config.get("baseUrl")
    try:
        base = operator if given is None else outbound.url(_text(ctx, "baseUrl"))
    except OutboundError as exc:
        raise NodeError(f"baseUrl: {exc}", retryable=False) from None
    trusted = _same_endpoint(base, operator)
    headers = {"Accept": "application/json"}
    if (variable := ctx.config.get("apiKeyEnv")) is not None:
        if not trusted:
            raise NodeError(
                "apiKeyEnv: a key from the server's environment is only sent to the operator's"
                " LLM endpoint (FLOWTRUX_LLM_BASE_URL), and this agent's baseUrl is another",
                retryable=False,
            )
        key = os.environ.get(variable, "")
        if not key:
            raise NodeError(f"apiKeyEnv: the server has no {variable} set", retryable=False)
        headers["Authorization"] = f"Bearer {key}"
        ctx.exchange.secrets.add(key)
    url = base.copy_with(path=base.path.rstrip("/") + "/chat/completions")  # its query kept
    return _Provider(url, trusted, headers)


def _same_endpoint(url: httpx.URL, other: httpx.URL) -> bool:
    def key(u: httpx.URL) -> tuple[str, str, int | None, str]:
        return u.scheme, u.host, u.port, u.path.rstrip("/")

    return key(url) == key(other)


def _text(ctx: NodeContext, field: str) -> str:
    """A config field rendered as text (a value other than text as its JSON)."""
    value = ctx.render(ctx.config[field])
    return value if isinstance(value, str) else strict_json.dumps(value)


def _opening(ctx: NodeContext) -> list[dict[str, Any]]:
    """The system message (if any) and the prompt. For a JSON answer, the words say so too:
    OpenAI refuses JSON mode when no message mentions JSON."""
    system = _text(ctx, "system") if "system" in ctx.config else ""
    prompt = _text(ctx, "prompt")
    wants_json = ctx.config.get("responseFormat") == "json"
    if wants_json and "json" not in f"{system} {prompt}".lower():
        system = f"{system}\n\n{JSON_HINT}".strip()
    opening = [{"role": "system", "content": system}] if system else []
    return [*opening, {"role": "user", "content": prompt}]


def _payload(ctx: NodeContext, conversation: _Conversation) -> dict[str, Any]:
    config = ctx.config
    payload: dict[str, Any] = {"model": conversation.model, "messages": conversation.messages}
    if "temperature" in config:
        payload["temperature"] = config["temperature"]
    if config.get("responseFormat") == "json":
        payload["response_format"] = {"type": "json_object"}
    if tools := config.get("tools"):
        payload["tools"] = [_tool_definition(ctx, tool) for tool in tools]
    if config.get("stream"):
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return payload


def _tool_definition(ctx: NodeContext, tool: Mapping[str, Any]) -> dict[str, Any]:
    function = {
        "name": tool["name"],
        "description": ctx.render(tool.get("description", "")),
        "parameters": ctx.render(tool.get("parameters", {"type": "object", "properties": {}})),
    }
    return {"type": "function", "function": function}


async def _ask(ctx: NodeContext, provider: _Provider, payload: dict[str, Any]) -> Reply:
    """One round: the conversation out, the model's reply in. Raises NodeError."""
    outbound = ctx.client()
    try:
        request = outbound.build(
            "POST",
            provider.url,
            headers={**provider.headers, "Content-Type": "application/json"},
            content=strict_json.utf8(strict_json.dumps(payload)),
            trusted=provider.trusted,
        )
        with trio.move_on_after(ROUND_TIMEOUT_S):
            limit = _stream_limit(ctx) if payload.get("stream") else output_limit(ctx)
            async with outbound.open(
                request, ctx.exchange, limit, trusted=provider.trusted
            ) as download:
                return await _reply(ctx, download, streamed=bool(payload.get("stream")))
        raise OutboundError(f"the provider gave no complete answer within {ROUND_TIMEOUT_S:g} s")
    except OutboundError as exc:
        raise NodeError(str(exc), retryable=exc.retryable) from None


async def _reply(ctx: NodeContext, download: Download, *, streamed: bool) -> Reply:
    response = download.response
    if not response.is_success:
        raise provider_error(
            response.status_code, response.headers.get("retry-after"), await download.read()
        )
    if not streamed:
        try:
            return completion(await strict_json.ANSWERS.parse(await download.read()))
        except strict_json.NotStrictJson as exc:
            raise NodeError(f"the provider's answer {exc}", retryable=False) from None
    media_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if media_type != "text/event-stream":
        raise NodeError(
            f"the provider did not stream its answer (Content-Type: {media_type or 'none'})",
            retryable=False,
        )
    return await _streamed(ctx, response)


async def _streamed(ctx: NodeContext, response: httpx.Response) -> Reply:
    """The answer's chunks as they come. What one read from the network brings goes out as one
    delta: at once, and never more deltas than reads, however small the provider's chunks."""
    stream = _Stream(Assembly(ctx.sizes.limit))
    async for text in response.aiter_text():  # closed with the response
        if delta := await stream.take(text):
            ctx.emit_delta(delta)
        if stream.done:
            break
    return stream.assembly.reply()


@attrs.define
class _Stream:
    """Server-sent events of `chat.completion.chunk`s, read as they come, each at most
    `MAX_EVENT_CHARS` (chunks are small; a large one is parsed off the event loop)."""

    assembly: Assembly
    lines: SSELineDecoder = attrs.field(factory=SSELineDecoder)
    events: SSEDecoder = attrs.field(factory=SSEDecoder)
    pending: int = 0  # characters read since the last whole event
    done: bool = False  # the stream said [DONE]

    async def take(self, text: str) -> str:
        """Take in what one read brought; return the content it completes."""
        self.pending += len(text)
        pieces = []
        for line in self.lines.decode(text):
            event = self.events.decode(line)
            if event is None or self.done:
                continue
            self.pending = 0
            if event.data == "[DONE]":
                self.done = True
            elif event.data:
                pieces.append(self.assembly.add(await _chunk(event.data)))
        if self.pending > MAX_EVENT_CHARS:
            raise NodeError(
                f"an event of the provider's stream is longer than {MAX_EVENT_CHARS:,} characters",
                retryable=False,
            )
        return "".join(pieces)


def _stream_limit(ctx: NodeContext) -> ReadLimit:
    """A stream frames each few characters of the answer in a chunk of some 200 bytes: it may
    be that much larger than the answer (which `Assembly` holds to a node's output)."""
    name = f"{STREAM_FRAMING} times FLOWTRUX_MAX_OUTPUT_BYTES, for a streamed answer's framing"
    return ReadLimit(STREAM_FRAMING * ctx.sizes.limit, name)


async def _chunk(data: str) -> Any:
    try:
        return await strict_json.ANSWERS.parse(strict_json.utf8(data))
    except strict_json.NotStrictJson as exc:
        raise NodeError(f"a chunk of the provider's stream {exc}", retryable=False) from None


async def _call_tool(
    ctx: NodeContext, tools: Mapping[str, Any], call: ToolCall, conversation: _Conversation
) -> dict[str, Any]:
    """Run one tool call and log it; what goes back to the model. A model's mistake (a tool
    that does not exist, arguments that are not JSON or miss a value) goes back to it as an
    error it can mend; a request that cannot be made (a blocked address) fails the node."""
    started = trio.current_time()
    arguments: Any = call.arguments
    tool = tools.get(call.name)
    if tool is None:
        result: dict[str, Any] = {"error": f"there is no tool named {call.name!r}"}
    else:
        try:
            arguments = strict_json.loads(call.arguments or "{}")
        except strict_json.NotStrictJson as exc:
            result = {"error": f"the arguments {exc}"}
        else:
            result = await _tool_request(ctx, tool, arguments)
    elapsed_ms = round((trio.current_time() - started) * 1000)
    conversation.tool_calls.append(
        {"name": call.name, "arguments": arguments, "result": result, "durationMs": elapsed_ms}
    )
    return result


async def _tool_request(
    ctx: NodeContext, tool: Mapping[str, Any], arguments: Any
) -> dict[str, Any]:
    if not isinstance(arguments, dict):
        return {"error": "the arguments must be a JSON object"}
    try:
        answer = await send(
            ctx, tool["http"], lambda value: ctx.render_with(value, {"args": arguments})
        )
    except MissingPath as exc:
        return {"error": str(exc)}
    return {"status": answer.output["status"], "body": answer.output["body"]}


def _answer(ctx: NodeContext, reply: Reply) -> Any:
    if reply.content is None and reply.refusal:
        raise NodeError(f"the model refused: {reply.refusal}", retryable=False)
    content = reply.content or ""
    if ctx.config.get("responseFormat") != "json":
        return content
    try:
        return strict_json.loads(content)
    except strict_json.NotStrictJson as exc:
        raise NodeError(
            f"the model's answer is not JSON as responseFormat asks: it {exc}"
        ) from None


def paths(config: Mapping[str, Any]) -> Iterable[str]:
    """What the templates read; in a tool's request, `args` is the model's arguments."""
    own, requests = _split_templates(config)
    in_requests = template_paths(requests)
    return [*template_paths(own), *(path for path in in_requests if root_of(path) != "args")]


def problems(config: Mapping[str, Any]) -> Iterable[str]:
    own, requests = _split_templates(config)
    found = template_problems(own) + template_problems(requests, ("args",))
    tools = config.get("tools", [])
    for i, tool in enumerate(tools):
        try:
            Draft202012Validator.check_schema(tool.get("parameters", {}))
        except SchemaError as exc:
            found.append(f"tools[{i}].parameters is not a valid JSON Schema: {exc.message}")
    names = [tool["name"] for tool in tools]
    repeated = sorted({name for name in names if names.count(name) > 1})
    return [*found, *(f"tools: the name '{name}' is used more than once" for name in repeated)]


def _split_templates(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The config less its tools' requests (whose templates read the run), and those requests
    (whose templates may also read the model's `args`)."""
    tools = config.get("tools", [])
    own = {key: value for key, value in config.items() if key != "tools"}
    own["tools"] = [{key: value for key, value in tool.items() if key != "http"} for tool in tools]
    return own, [tool["http"] for tool in tools]


AGENT = NodeType("agent", CONFIG_SCHEMA, run, paths=paths, problems=problems)
