"""A fake model for FlowTrux's `agent` node: OpenAI's Chat Completions API
(https://platform.openai.com/docs/api-reference/chat), `POST /v1/chat/completions`, served by
real hypercorn (trio worker), answering from a script the test sets, one turn per request.

Answers are shaped as OpenAI's: a `chat.completion`, or with `"stream": true` a
`text/event-stream` of `chat.completion.chunk` frames: the role (with the first tool call, if
the turn calls tools), the content or the tool calls' arguments in pieces, an empty delta with
the `finish_reason`, the usage (`"choices": []`) when `stream_options.include_usage` asks for
it, and `data: [DONE]`. Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`.

What it receives is checked as OpenAI checks it, so that a careless client fails here: a 400
for a request without `model` or `messages`, with `stream_options` but no `stream`, a `tool`
message without `tool_call_id` or answering no tool call of the assistant message before it,
or an assistant message whose tool calls are not each answered by the `tool` messages after it.
Such requests use no turn of the script. When the script has run out: a 500 that says so.
"""

import json
import secrets
import time
from typing import Any, TypeAlias

import attrs
import pytest
import trio
from starlette.types import Receive, Scope, Send

from tests.outside.asgi import (
    DisconnectLog,
    answer_lifespan,
    header_dict,
    read_body,
    respond,
    serve,
    start,
    unless_client_leaves,
)

PIECE_CHARS = 4  # streamed content and arguments come in pieces of this many characters
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@attrs.frozen
class Answer:
    """The model answers `content`; streamed in `chunks` (by default, pieces of 4 characters).

    `pause_ms`: the pause between streamed chunks, or before an answer not streamed. `hang`:
    send the role and the first piece, then nothing more until the client leaves (not streamed:
    no answer at all)."""

    content: str
    chunks: list[str] | None = None
    pause_ms: int = 0
    hang: bool = False

    def __attrs_post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.content:
            raise ValueError(f"the chunks {self.chunks!r} do not make up the content")


@attrs.frozen
class Call:
    """A tool call: `arguments` is the JSON text the model wrote; `id` by default `call_…`."""

    name: str
    arguments: str
    id: str | None = None


@attrs.frozen
class ToolCalls:
    """The model calls tools; `pause_ms` and `hang` as for `Answer`."""

    calls: list[Call] = attrs.field(validator=attrs.validators.min_len(1))
    pause_ms: int = 0
    hang: bool = False


@attrs.frozen
class Fail:
    """An error answer: `body` as JSON if a dict, as text/plain if a str."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = attrs.Factory(dict)


@attrs.frozen
class Malformed:
    """A 200 whose body is `text`, not a valid completion."""

    text: str
    content_type: str = "application/json"


Turn: TypeAlias = Answer | ToolCalls | Fail | Malformed


def invalid_api_key() -> Fail:
    """OpenAI's 401 for a wrong key."""
    message = (
        "Incorrect API key provided: sk-wrong. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return Fail(401, error(message, "invalid_request_error", code="invalid_api_key"))


def error(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body as OpenAI writes them."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@attrs.define(eq=False)
class FakeLLM(DisconnectLog):
    """The fake model's state; an ASGI app. `url` (ending in `/v1`) is set once it is served.

    `requests`: every request received, `{"body": <its JSON, or its text if not JSON>,
    "headers": {<lower-case name>: value}}`. `disconnects`: by the request's position in
    `requests` (`"0"` for the first), when its client left before its answer ended."""

    url: str = ""
    requests: list[dict[str, Any]] = attrs.Factory(list)
    script: list[Turn] = attrs.Factory(list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body, receive = await read_body(receive)
        request_id = str(len(self.requests))
        try:
            request: Any = json.loads(body)
        except ValueError:
            request = body.decode("utf-8", "replace")
        self.requests.append({"body": request, "headers": header_dict(scope)})
        if (scope["method"], scope["path"]) != ("POST", "/v1/chat/completions"):
            url = f"Invalid URL ({scope['method']} {scope['path']})"
            await respond_json(send, 404, error(url, "invalid_request_error"))
            return
        rejection = rejected(request)
        if rejection is not None:
            await respond_json(send, 400, rejection)
            return
        if not self.script:
            ran_out = f"The fake LLM's script has run out: no turn for request {request_id}."
            await respond_json(send, 500, error(ran_out, "server_error"))
            return
        turn = self.script.pop(0)
        match turn:
            case Fail(status, dict(payload), headers):
                await respond_json(send, status, payload, headers)
            case Fail(status, str(text), headers):
                await respond(
                    send, status, text.encode(), {"content-type": "text/plain", **headers}
                )
            case Malformed(text, content_type):
                await respond(send, 200, text.encode(), {"content-type": content_type})
            case Answer() | ToolCalls():

                def left() -> None:
                    self.record_disconnect(request_id)

                completion = Completion.to(request)
                answer = completion.stream if request.get("stream") else completion.whole
                await unless_client_leaves(receive, lambda: answer(turn, send), left)


async def respond_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    encoded = json.dumps(body).encode()
    await respond(send, status, encoded, {"content-type": "application/json", **(headers or {})})


def rejected(request: Any) -> dict[str, Any] | None:
    """OpenAI's 400 for what is wrong with `request`, if anything."""
    if not isinstance(request, dict):
        message = (
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "payload."
        )
        return error(message, "invalid_request_error")
    if not isinstance(request.get("model"), str):
        return error("you must provide a model parameter", "invalid_request_error")
    messages = request.get("messages")
    if messages is None:
        return missing("messages")
    if not isinstance(messages, list) or not messages:
        return error(
            f"Invalid 'messages': expected a non-empty array, got {json.dumps(messages)}.",
            "invalid_request_error",
            "messages",
            "invalid_value",
        )
    if "stream_options" in request:
        if request.get("stream") is not True:
            message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            return error(message, "invalid_request_error", "stream_options", "invalid_value")
        if not isinstance(request["stream_options"], dict):
            message = "Invalid type for 'stream_options': expected an object."
            return error(message, "invalid_request_error", "stream_options", "invalid_type")
    return rejected_messages(messages)


def rejected_messages(messages: list[Any]) -> dict[str, Any] | None:
    """OpenAI's 400 for a conversation whose tool calls and tool messages do not pair up."""
    unanswered: list[str] = []  # the tool calls of the last assistant message not yet answered
    after_calls = False  # whether the messages since the last non-tool one were tool calls
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES)
            return error(
                f"Invalid value: {json.dumps(role)}. Supported values are: {supported}.",
                "invalid_request_error",
                f"messages[{i}].role",
                "invalid_value",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                return missing(f"messages[{i}].tool_call_id")
            if not after_calls:
                return error(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    "invalid_request_error",
                    f"messages.[{i}].role",
                )
            if call_id not in unanswered:
                return error(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    "invalid_request_error",
                    f"messages.[{i}].tool_call_id",
                )
            unanswered.remove(call_id)
            continue
        if unanswered:
            return unanswered_calls(unanswered, f"messages.[{i}].role")
        calls = message.get("tool_calls") if role == "assistant" else None
        after_calls = bool(calls)
        for j, call in enumerate(calls or []):
            call_id = call.get("id") if isinstance(call, dict) else None
            if not isinstance(call_id, str):
                return missing(f"messages[{i}].tool_calls[{j}].id")
            unanswered.append(call_id)
    if unanswered:
        return unanswered_calls(unanswered, "messages")
    return None


def missing(param: str) -> dict[str, Any]:
    message = f"Missing required parameter: '{param}'."
    return error(message, "invalid_request_error", param, "missing_required_parameter")


def unanswered_calls(call_ids: list[str], param: str) -> dict[str, Any]:
    return error(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(call_ids),
        "invalid_request_error",
        param,
    )


@attrs.frozen
class Completion:
    """One completion being answered: what its answer or chunks say besides the turn."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    include_usage: bool

    @classmethod
    def to(cls, request: dict[str, Any]) -> "Completion":
        options = request.get("stream_options", {})
        return cls(
            id=f"chatcmpl-{secrets.token_hex(15)}",
            created=int(time.time()),
            model=request["model"],
            prompt_tokens=max(1, len(json.dumps(request["messages"])) // 4),
            include_usage=options.get("include_usage") is True,
        )

    async def whole(self, turn: Answer | ToolCalls, send: Send) -> None:
        """A `chat.completion`."""
        await trio.sleep(turn.pause_ms / 1000)
        if turn.hang:
            await trio.sleep_forever()
        message: dict[str, Any] = {"role": "assistant"}
        if isinstance(turn, Answer):
            message["content"] = turn.content
        else:
            message["content"] = None
            message["tool_calls"] = [tool_call(call) for call in turn.calls]
        message |= {"refusal": None, "annotations": []}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(turn),
        }
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(turn),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        await respond_json(send, 200, body)

    async def stream(self, turn: Answer | ToolCalls, send: Send) -> None:
        """`chat.completion.chunk` frames, `turn.pause_ms` apart, then `[DONE]`."""
        deltas = answer_deltas(turn) if isinstance(turn, Answer) else tool_call_deltas(turn)
        frames = [self.chunk(delta) for delta in deltas]
        frames.append(self.chunk({}, finish_reason(turn)))
        if self.include_usage:
            frames.append(self.chunk_frame([], self.usage(turn)))
        await start(send, 200, {"content-type": "text/event-stream; charset=utf-8"})
        datas = [json.dumps(frame, separators=(",", ":")) for frame in frames]
        for i, data in enumerate([*datas, "[DONE]"]):
            if i > 0:
                await trio.sleep(turn.pause_ms / 1000)
            event = f"data: {data}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if turn.hang and i == 1:  # the role, and the first piece
                await trio.sleep_forever()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self.chunk_frame([choice], None)

    def chunk_frame(
        self, choices: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        frame = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if self.include_usage:
            frame["usage"] = usage
        return frame

    def usage(self, turn: Answer | ToolCalls) -> dict[str, Any]:
        """The tokens: roughly 4 characters a token for the prompt, a piece for each one of the
        answer."""
        if isinstance(turn, Answer):
            completion_tokens = len(answer_pieces(turn))
        else:
            completion_tokens = sum(len(split(call.arguments)) for call in turn.calls)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def answer_deltas(turn: Answer) -> list[dict[str, Any]]:
    role: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    return [role, *({"content": piece} for piece in answer_pieces(turn))]


def tool_call_deltas(turn: ToolCalls) -> list[dict[str, Any]]:
    """As OpenAI streams tool calls: the role comes with the first call's start; each call
    starts with its index, id, type, name and empty arguments, then its arguments in pieces
    that carry only the index."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(turn.calls):
        function = {"name": call.name, "arguments": ""}
        opening = {"index": index, "id": call_id_of(call), "type": "function", "function": function}
        deltas.append({"tool_calls": [opening]})
        for piece in split(call.arguments):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    deltas[0] = {"role": "assistant", "content": None, **deltas[0], "refusal": None}
    return deltas


def tool_call(call: Call) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call_id_of(call), "type": "function", "function": function}


def finish_reason(turn: Answer | ToolCalls) -> str:
    return "stop" if isinstance(turn, Answer) else "tool_calls"


def answer_pieces(turn: Answer) -> list[str]:
    return turn.chunks if turn.chunks is not None else split(turn.content)


def split(text: str) -> list[str]:
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]


def call_id_of(call: Call) -> str:
    return call.id if call.id is not None else f"call_{secrets.token_hex(12)}"


async def serve_llm(nursery: trio.Nursery) -> FakeLLM:
    """A fake model served in `nursery`, until it is cancelled."""
    llm = FakeLLM()
    llm.url = await serve(nursery, llm) + "/v1"
    return llm


@pytest.fixture
async def llm(nursery: trio.Nursery) -> FakeLLM:
    """A fake model for the test, served in pytest-trio's `nursery`; set its `script`."""
    return await serve_llm(nursery)
