"""Server-Sent Events read from the bytes as they arrive, so that an event's data is compared
with what is stored exactly as it was sent (a line reader that splits on U+2028 and the like,
as `str.splitlines` does, would not)."""

import json
from typing import Any

import attrs

TERMINAL = frozenset({"complete", "error", "cancelled"})


@attrs.frozen
class Event:
    """One event: `seq` is its `id:`, `data` its one line of JSON as sent (or stored)."""

    seq: int
    name: str
    data: str

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL

    def json(self) -> Any:
        return json.loads(self.data)


@attrs.define
class FrameParser:
    """Turns the bytes of an event stream into events; keeps what is malformed, to report."""

    malformed: list[str] = attrs.field(factory=list)
    _buffer: bytes = b""
    _fields: dict[str, str] = attrs.field(factory=dict)

    def feed(self, chunk: bytes) -> list[Event]:
        """The events whose frames `chunk` completed."""
        self._buffer += chunk
        events: list[Event] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if line.startswith(":"):  # a comment: a keepalive
            return None
        if line:
            name, _, value = line.partition(": ")
            if name in self._fields:
                self.malformed.append(f"field {name!r} twice in one frame")
            self._fields[name] = value
            return None
        fields, self._fields = self._fields, {}
        if not fields or set(fields) == {"retry"}:
            return None
        try:
            return Event(int(fields["id"]), fields["event"], fields["data"])
        except (KeyError, ValueError):
            self.malformed.append(f"frame without a numeric id, an event or data: {fields}")
            return None


def parse(body: bytes) -> list[Event]:
    """Every whole event in `body`."""
    return FrameParser().feed(body)
