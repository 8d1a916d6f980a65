"""hypercorn's access log, with each atom of its format made only when the format asks for it.

hypercorn 0.18's `AccessLogAtoms` makes every atom for every request before formatting, the
process's environment included (one `{NAME}e` atom for each variable): a fifth of the time the
server spent ending an answer, some 6% of a 5-node run's `execute`. `LazyAtoms` gives the same
values (tests/http/test_access_log.py compares them), computed when the format reads them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

from hypercorn.logging import Logger
from hypercorn.typing import ResponseSummary, WWWScope

MISSING = "-"  # what hypercorn logs for an atom it does not have
# hypercorn's atoms without braces
ATOMS = ["h", "l", "t", "r", "R", "s", "st", "S", "m", "U", "Uq", "q", "H", "b", "B", "f", "a",
         "T", "D", "L", "p"]  # fmt: skip


class AccessLogger(Logger):
    """hypercorn's logger (`Config.logger_class`), with lazy access log atoms."""

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, Any]:
        return LazyAtoms(request, response, request_time)


class LazyAtoms(Mapping[str, Any]):
    def __init__(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        self.request = request
        self.response = response
        self.request_time = request_time

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            found = _last(key[1:-2].lower(), self._named(key[-1].lower()))
            return MISSING if found is None else found
        try:
            return self._atom(key)
        except KeyError:
            return MISSING

    def __iter__(self) -> Iterator[str]:  # the atoms a format may name without braces
        return iter(ATOMS)

    def __len__(self) -> int:  # never empty: `logging` formats with an empty mapping as args
        return len(ATOMS)

    def _named(self, kind: str) -> Iterable[tuple[str, str]]:
        """Request headers (`i`), response headers (`o`) or environment variables (`e`)."""
        if kind == "e":
            return os.environ.items()
        if kind == "i":
            headers = self.request["headers"]
        elif kind == "o" and self.response is not None:
            headers = self.response.get("headers", [])
        else:
            return ()
        return ((name.decode("latin1"), value.decode("latin1")) for name, value in headers)

    def _atom(self, key: str) -> Any:
        request, protocol = self.request, self.request.get("http_version", "ws")
        method = request["method"] if request["type"] == "http" else "GET"
        query = request["query_string"].decode()
        with_query = request["path"] + ("?" + query if query else "")
        match key:
            case "h":
                return _remote(request.get("client"))
            case "l":
                return MISSING
            case "t":
                return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")
            case "r":
                return f"{method} {request['path']} {protocol}"
            case "R":
                return f"{method} {with_query} {protocol}"
            case "s":
                return MISSING if self.response is None else str(self.response["status"])
            case "st":
                return self._status_phrase()
            case "S":
                return request["scheme"]
            case "m":
                return method
            case "U":
                return request["path"]
            case "Uq":
                return with_query
            case "q":
                return query
            case "H":
                return protocol
            case "b" | "B":
                return self["{content-length}o"]
            case "f":
                return self["{referer}i"]
            case "a":
                return self["{user-agent}i"]
            case "T":
                return int(self.request_time)
            case "D":
                return int(self.request_time * 1_000_000)
            case "L":
                return f"{self.request_time:.6f}"
            case "p":
                return f"<{os.getpid()}>"
        raise KeyError(key)

    def _status_phrase(self) -> str:
        if self.response is None:
            return MISSING
        status = self.response["status"]
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return f"<???{status}???>"


def _last(name: str, pairs: Iterable[tuple[str, str]]) -> str | None:
    """The value of the last pair named `name` (case aside), as hypercorn's dict keeps it."""
    found = None
    for key, value in pairs:
        if key.lower() == name:
            found = value
    return found


def _remote(client: Any) -> str | None:  # None as hypercorn has it ("None" in the log)
    if client is None:
        return None
    if len(client) == 2:
        return f"{client[0]}:{client[1]}"
    if len(client) == 1:
        return str(client[0])
    return f"<???{client}???>"
