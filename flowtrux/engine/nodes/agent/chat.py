"""The OpenAI Chat Completions protocol, as OpenAI documents it: what an answer holds, how a
streamed answer's chunks add up (content pieces, tool calls whose arguments arrive in pieces),
and what a provider's error means for the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from flowtrux import strict_json
from flowtrux.engine.errors import NodeError
from flowtrux.timestamps import utc_now

MAX_TOOL_CALLS = 32  # in one answer
ERROR_CHARS = 500  # of a provider's error message, in the node's error
MAX_RETRY_AFTER_S = 3600.0
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@attrs.frozen
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def to_message(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


@attrs.frozen
class Reply:
    """The assistant's message of one round, and the tokens the round used."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    usage: Mapping[str, int]
    refusal: str | None = None
    finish_reason: str | None = None

    def check_finished(self) -> None:
        """Raises NodeError when the answer stopped short of its end."""
        if self.finish_reason == "length":
            raise NodeError(
                "the model's answer was cut off at its token limit (finish_reason: length)",
                retryable=False,
            )
        if self.finish_reason == "content_filter":
            raise NodeError(
                "the provider's content filter stopped the answer (finish_reason: content_filter)",
                retryable=False,
            )

    def to_message(self) -> dict[str, Any]:
        """The message that goes back to the model in the next round."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


def malformed(what: str) -> NodeError:
    return NodeError(f"the provider's answer is not a chat completion: {what}", retryable=False)


def completion(body: Any) -> Reply:
    """The reply in a `chat.completion` object. Raises NodeError when it is not one."""
    choice = _first_choice(body)
    message = _field(choice, "message", dict)
    calls = _field(message, "tool_calls", list, optional=True) or []
    if len(calls) > MAX_TOOL_CALLS:
        raise malformed(f"{len(calls)} tool calls in one answer, more than {MAX_TOOL_CALLS}")
    return Reply(
        _field(message, "content", str, optional=True),
        tuple(_tool_call(call) for call in calls),
        usage_of(body),
        _field(message, "refusal", str, optional=True),
        _field(choice, "finish_reason", str, optional=True),
    )


@attrs.define
class Assembly:
    """A streamed answer, chunk by chunk (`chat.completion.chunk` objects), its text (content,
    arguments, refusal) at most `limit` characters in all."""

    limit: int
    _size: int = 0
    _content: list[str] = attrs.field(factory=list)
    _calls: dict[int, dict[str, str]] = attrs.field(factory=dict)  # by index: id, name, args
    _refusal: list[str] = attrs.field(factory=list)
    _usage: Mapping[str, int] = attrs.field(factory=dict)
    _finish_reason: str | None = None

    def add(self, chunk: Any) -> str:
        """Take one chunk in; return the content it adds ('' for none)."""
        if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
            raise NodeError(f"the provider failed while answering: {_said(chunk)}")
        if not isinstance(chunk, dict):
            raise malformed("a streamed chunk is not a JSON object")
        if chunk.get("usage"):
            self._usage = usage_of(chunk)
        choices = _field(chunk, "choices", list)
        if not choices:
            return ""  # the usage chunk
        choice = choices[0]
        if not isinstance(choice, dict):
            raise malformed("a streamed choice is not an object")
        if reason := _field(choice, "finish_reason", str, optional=True):
            self._finish_reason = reason
        delta = _field(choice, "delta", dict, optional=True) or {}
        for piece in _field(delta, "tool_calls", list, optional=True) or []:
            self._add_call_piece(piece)
        if refusal := _field(delta, "refusal", str, optional=True):
            self._refusal.append(self._counted(refusal))
        if content := _field(delta, "content", str, optional=True):
            self._content.append(self._counted(content))
        return content or ""

    def _counted(self, text: str) -> str:
        self._size += len(text)
        if self._size > self.limit:
            raise NodeError(
                f"the model's answer is longer than {self.limit:,} characters, the most a"
                " node's output holds (FLOWTRUX_MAX_OUTPUT_BYTES)",
                retryable=False,
            )
        return text

    def _add_call_piece(self, piece: Any) -> None:
        """Tool calls come in pieces keyed by `index`: the first names the call and the
        function, the next ones carry more of its arguments. Text fields add up, as OpenAI's
        own client adds them."""
        if not isinstance(piece, dict) or not isinstance(piece.get("index"), int):
            raise malformed("a streamed tool call has no index")
        call = self._calls.get(piece["index"])
        if call is None:
            if len(self._calls) == MAX_TOOL_CALLS:
                raise malformed(f"more than {MAX_TOOL_CALLS} tool calls in one answer")
            call = self._calls[piece["index"]] = {"id": "", "name": "", "arguments": ""}
        function = _field(piece, "function", dict, optional=True) or {}
        call["id"] += self._counted(_field(piece, "id", str, optional=True) or "")
        call["name"] += self._counted(_field(function, "name", str, optional=True) or "")
        call["arguments"] += self._counted(_field(function, "arguments", str, optional=True) or "")

    def reply(self) -> Reply:
        if self._finish_reason is None:
            raise NodeError("the provider's stream ended before its answer was complete")
        calls = tuple(
            ToolCall(call["id"], call["name"], call["arguments"])
            for _, call in sorted(self._calls.items())
        )
        refusal = "".join(self._refusal) or None
        content = "".join(self._content) if self._content or not (calls or refusal) else None
        return Reply(content, calls, self._usage, refusal, self._finish_reason)


def usage_of(body: Any) -> dict[str, int]:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {key: value for key in USAGE_KEYS if isinstance(value := usage.get(key), int)}


def provider_error(status: int, retry_after: str | None, raw: bytes) -> NodeError:
    """A provider's answer outside 2xx as a node error: 429 and 5xx may be retried (429 not
    before its `Retry-After`), anything else would fail again."""
    said = _said(_parsed(raw)) or raw[: ERROR_CHARS * 4].decode(errors="replace")
    said = said.strip()[:ERROR_CHARS] or "(no message)"
    if status in (401, 403):
        return NodeError(f"the provider refused the API key ({status}): {said}", retryable=False)
    if status == 429:
        wait_s = _seconds(retry_after)
        when = f", retry after {wait_s:g} s" if wait_s else ""
        return NodeError(
            f"the provider is limiting requests (429{when}): {said}", retry_after_s=wait_s
        )
    if status >= 500:
        return NodeError(f"the provider failed ({status}): {said}")
    return NodeError(f"the provider refused the request ({status}): {said}", retryable=False)


def _parsed(raw: bytes) -> Any:
    try:
        return strict_json.loads(raw)
    except strict_json.NotStrictJson:
        return None


def _said(body: Any) -> str:
    """The message of an OpenAI error object `{"error": {"message": …}}`, or ''."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message[:ERROR_CHARS] if isinstance(message, str) else ""


def _seconds(retry_after: str | None) -> float:
    """`Retry-After` in seconds (a number of seconds or an HTTP date), at most an hour."""
    text = (retry_after or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 6:
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        wait_s = (parsedate_to_datetime(text) - utc_now()).total_seconds()
    except (TypeError, ValueError):  # not a date, or one without a time zone
        return 0.0
    return min(max(wait_s, 0.0), MAX_RETRY_AFTER_S)


def _first_choice(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise malformed("it is not a JSON object")
    choices = _field(body, "choices", list)
    if not choices or not isinstance(choices[0], dict):
        raise malformed("it has no choice")
    first: dict[str, Any] = choices[0]
    return first


def _tool_call(call: Any) -> ToolCall:
    if not isinstance(call, dict):
        raise malformed("a tool call is not an object")
    function = _field(call, "function", dict)
    return ToolCall(
        _field(call, "id", str), _field(function, "name", str), _field(function, "arguments", str)
    )


def _field(owner: dict[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    value = owner.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind):
        raise malformed(f"'{name}' is missing or not {kind.__name__}")
    return value
