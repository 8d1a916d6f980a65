"""Secrets never reach a log, a debug field, the stream or the history.

Two layers. By name: headers and query parameters whose names say they carry a credential are
shown as `[redacted]`, and so is a URL's password. By value: every secret a request carried is
collected, and whatever a node reports (its output, its debug fields, its error, its streamed
text) is scrubbed of those values, so a server that echoes a header or a provider error that
quotes the key gives nothing away.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
import httpx

REDACTED = "[redacted]"
_SENSITIVE_WORDS = ("auth", "cookie", "key", "token", "secret", "password", "session", "signature")
_SENSITIVE_EXACT = frozenset({"sig"})
MIN_SECRET_CHARS = 4  # shorter values are no secret, and would scrub ordinary text


def is_sensitive(name: str) -> bool:
    """Whether a header or query parameter named `name` carries a credential."""
    lowered = name.lower()
    return lowered in _SENSITIVE_EXACT or any(word in lowered for word in _SENSITIVE_WORDS)


def redact_url(url: httpx.URL) -> str:
    """`url` with its credentials (user name too: some APIs take the key there) and its
    sensitive query values replaced by `[redacted]`."""
    if url.userinfo:
        url = url.copy_with(username=REDACTED, password=REDACTED if url.password else None)
    if any(is_sensitive(name) for name in url.params):
        params = [
            (name, REDACTED if is_sensitive(name) else value)
            for name, value in url.params.multi_items()
        ]
        url = url.copy_with(params=params)
    return str(url)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a log shows them: lower-case names, sensitive values redacted, repeated
    headers joined with `, `."""
    shown: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        value = REDACTED if is_sensitive(name) else value
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


@attrs.define
class Secrets:
    """The secret values one node sent, and the scrubbing of what it reports."""

    _values: set[str] = attrs.field(factory=set)
    _pattern: re.Pattern[str] | None = attrs.field(default=None, init=False)

    def add(self, value: str) -> None:
        """A secret, with the forms a server may echo it in: the credential of an
        `Authorization` value without its scheme, each cookie's value, percent-encoded."""
        forms = {value, value.partition(" ")[2]}
        forms.update(cookie.partition("=")[2] for cookie in value.split(";"))
        forms.update({quote(form, safe="") for form in forms})
        new = {form.strip() for form in forms if len(form.strip()) >= MIN_SECRET_CHARS}
        if not new <= self._values:
            self._values |= new
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, longest_first)))

    def add_request(self, request: httpx.Request) -> None:
        """The secrets of a request about to be sent: its sensitive headers and query values,
        and its URL's credentials."""
        for name, value in request.headers.items():
            if is_sensitive(name):
                self.add(value)
        for name, value in request.url.params.multi_items():
            if is_sensitive(name):
                self.add(value)
        if request.url.userinfo:  # httpx sends it as Basic credentials
            credentials = f"{request.url.username}:{request.url.password}".encode()
            self.add(request.url.username)
            self.add(request.url.password)
            self.add(base64.b64encode(credentials).decode())

    def __bool__(self) -> bool:
        """Whether there is anything to scrub."""
        return self._pattern is not None

    def scrub(self, value: Any) -> Any:
        """`value` (JSON) with every secret in its strings and keys replaced by `[redacted]`."""
        if self._pattern is None:
            return value
        return _scrubbed(value, self._pattern)

    def scrub_text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def scrub_stream(self, text: str) -> tuple[str, str]:
        """A piece of a stream (with what was held back of the piece before), scrubbed, less
        its end when that end could be the start of a secret: that end is returned apart, to go
        before the next piece, so that a secret split across pieces is scrubbed whole."""
        scrubbed = self.scrub_text(text)
        held = max((_opening_at_end(scrubbed, secret) for secret in self._values), default=0)
        return scrubbed[: len(scrubbed) - held], scrubbed[len(scrubbed) - held :]


def _opening_at_end(text: str, secret: str) -> int:
    """The length of the longest start of `secret` (not all of it) that `text` ends with."""
    for length in range(min(len(secret) - 1, len(text)), 0, -1):
        if text.endswith(secret[:length]):
            return length
    return 0


def _scrubbed(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_scrubbed(k, pattern): _scrubbed(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item, pattern) for item in value]
    return value
