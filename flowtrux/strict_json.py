"""JSON as FlowTrux takes it in and writes it out: strict, bounded, and always storable.

`loads` is the door for everything a caller sends. It takes only what every JSON parser and the
store can carry: no `NaN` or `Infinity`, numbers that fit a double, no lone UTF-16 surrogates,
nesting at most `MAX_DEPTH` deep. What passes can be written back with `dumps` and stored.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs
import trio

from flowtrux.limiters import run_limiter

MAX_DEPTH: Final = 64
PIECE_ITEMS: Final = 1_000  # values written by one call of the C encoder
_CONTAINERS: Final = (dict, list, tuple)
_LARGEST: Final = int(sys.float_info.max)
PARSE_IN_THREAD_BYTES: Final = 64 * 1024  # larger texts are parsed off the Trio thread
CHECK_SLICE: Final = 1_000  # containers checked between pauses (about 2 ms)
PARSES_AT_ONCE: Final = 1  # threads parsing at once: the C parser holds the GIL ~40-130 ms a MiB


class NotStrictJson(ValueError):
    """The text is not JSON FlowTrux accepts; the message says why, as the end of a sentence
    that starts "The request body ..."."""


def loads(text: str | bytes) -> Any:
    """Parse `text` strictly. Raises NotStrictJson. Blocking: the parse itself is C (it holds
    the GIL, some 40 ms a MiB of numbers), the checks after it Python (`Parsing` runs them a
    slice at a time on the event loop)."""
    value = _parsed(text)
    for _ in _checking(value):
        pass
    return value


def _parsed(text: str | bytes) -> Any:
    """`text` parsed, not yet checked. Raises NotStrictJson."""
    try:
        return json.loads(text, parse_constant=_constant)
    except NotStrictJson:
        raise
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise NotStrictJson(f"is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise NotStrictJson("is not UTF-8 text") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise NotStrictJson("holds an integer that does not fit a double") from None


@attrs.frozen
class Parsing:
    """Where texts that may be large are parsed (`loads`): past `PARSE_IN_THREAD_BYTES`, the C
    parser runs in a worker thread, one at a time, and the checks after it run on the event
    loop a slice at a time (a Python walk in a thread would hold up the event loop far longer:
    each time it gave up the GIL it would wait up to 5 ms to have it back). Request bodies and
    remote answers queue apart, so that one does not wait behind the other; an answer's C
    parse is left to finish alone when its node is cancelled."""

    name: str
    abandon_on_cancel: bool = False
    _limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = attrs.field(init=False)

    @_limiter.default
    def _new_limiter(self) -> trio.lowlevel.RunVar[trio.CapacityLimiter]:
        return trio.lowlevel.RunVar(f"flowtrux_parsing_{self.name}")

    async def parse(self, raw: bytes) -> Any:
        """Raises NotStrictJson. Checkpoints."""
        if len(raw) <= PARSE_IN_THREAD_BYTES:
            return loads(raw)
        limiter = run_limiter(self._limiter, PARSES_AT_ONCE)
        value = await trio.to_thread.run_sync(
            _parsed, raw, limiter=limiter, abandon_on_cancel=self.abandon_on_cancel
        )
        for _ in _checking(value):
            await trio.lowlevel.checkpoint()
        return value


REQUEST_BODIES: Final = Parsing("request_bodies")
ANSWERS: Final = Parsing("answers", abandon_on_cancel=True)


def dumps(value: Any) -> str:
    """One line of compact JSON, non-ASCII text as itself. Raises ValueError for a value JSON
    cannot carry (NaN, Infinity), TypeError for one that is not JSON at all.

    The text is made by calls of the C encoder on at most `PIECE_ITEMS` values each: one call
    holds the GIL throughout (some 35 ms a MB of numbers), so a thread writing a large value
    would hold up the event loop as long; between pieces it lets it run."""
    return "".join(_pieces(value))


def _pieces(value: Any) -> Iterator[str]:
    """The text of `value`: one call of the encoder when it holds at most PIECE_ITEMS values;
    else its members, those that fit together in one call each."""
    kind = type(value)
    if _fits_a_piece(value):
        yield _encode(value)
    elif kind is dict and all(type(key) is str for key in value):
        yield from _object_pieces(value)
    elif kind is list or kind is tuple:
        yield from _array_pieces(value)
    else:
        yield _encode(value)


def _object_pieces(value: dict[str, Any]) -> Iterator[str]:
    opening, pending, used = "{", dict[str, Any](), 0
    for key, item in value.items():
        size = _values_in(item, PIECE_ITEMS)
        if pending and (size > PIECE_ITEMS or used + size > PIECE_ITEMS):
            yield opening + _encode(pending)[1:-1]
            opening, pending, used = ",", {}, 0
        if size > PIECE_ITEMS:
            yield opening + _encode(key) + ":"
            yield from _pieces(item)
            opening = ","
        else:
            pending[key] = item
            used += size
    if pending:
        yield opening + _encode(pending)[1:-1]
    yield "}"


def _array_pieces(value: list[Any] | tuple[Any, ...]) -> Iterator[str]:
    opening, start = "[", 0
    while start < len(value):
        end, used = start, 0
        while end < len(value):
            size = _values_in(value[end], PIECE_ITEMS - used)
            if used + size > PIECE_ITEMS:
                break
            used, end = used + size, end + 1
        if end == start:  # one member larger than a piece
            yield opening
            yield from _pieces(value[start])
            end = start + 1
        else:
            yield opening + _encode(value[start:end])[1:-1]
        opening, start = ",", end
    yield "]"


def _fits_a_piece(value: Any) -> bool:
    return _values_in(value, PIECE_ITEMS) <= PIECE_ITEMS


def _values_in(value: Any, budget: int) -> int:
    """How many values `value` holds, itself included; counting stops once past `budget`."""
    if type(value) not in _CONTAINERS:
        return 1
    count, todo = 1, [value]
    while todo:  # holds containers only: most members are counted without being visited
        item = todo.pop()
        members = item.values() if type(item) is dict else item
        count += len(members)
        if count > budget:
            return budget + 1
        todo += [member for member in members if type(member) in _CONTAINERS]
    return count


# What json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False) makes,
# without making an encoder at each call.
_encode: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def utf8(text: str) -> bytes:
    """JSON text as UTF-8 bytes. Text an earlier version stored may hold a lone UTF-16
    surrogate, which UTF-8 cannot carry: that text is written again with every non-ASCII
    character escaped (`\\ud800`), which every JSON parser reads back as it was stored."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), separators=(",", ":")).encode("ascii")


def _constant(name: str) -> Any:
    raise NotStrictJson(f"holds {name}, which JSON does not have; send a number or null")


def _check_number(number: int | float) -> None:
    if type(number) is float and not math.isfinite(number):  # 1e999 parses as inf
        raise NotStrictJson("holds a number that does not fit a double")
    if type(number) is int and abs(number) > _LARGEST:
        text = str(number)
        shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} digits)"
        raise NotStrictJson(f"holds the number {shown}, which does not fit a double")


def _too_deep() -> NotStrictJson:
    return NotStrictJson(f"is nested deeper than {MAX_DEPTH} levels of objects and lists")


def _checking(value: Any) -> Iterator[None]:
    """Check the depth, numbers and text of a parsed value, without recursion (the depth is
    what is checked), pausing (yielding) after about every `CHECK_SLICE` values; scalars are
    checked where they are met, only containers wait their turn. Raises NotStrictJson."""
    todo: list[tuple[Any, int]] = []
    _check_items([value], 0, todo)
    checked = 0
    while todo:
        container, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        for part in _slices(container):
            _check_items(part, depth, todo)
            checked += len(part) + 1
            if checked >= CHECK_SLICE:
                checked = 0
                yield


def _slices(container: dict[str, Any] | list[Any]) -> Iterator[list[Any]]:
    """A container's values (and a dict's keys) in lists of at most `CHECK_SLICE`."""
    sources = (container.keys(), container.values()) if type(container) is dict else (container,)
    for source in sources:
        values = iter(source)
        while part := list(itertools.islice(values, CHECK_SLICE)):
            yield part


def _check_items(items: Iterable[Any], depth: int, todo: list[tuple[Any, int]]) -> None:
    for item in items:
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _check_text(item)
        elif kind is dict or kind is list:
            todo.append((item, depth + 1))
        elif kind is int or kind is float:
            _check_number(item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise NotStrictJson(
            f"holds a lone UTF-16 surrogate (\\u{code:04x}), which is not text; send valid"
            " Unicode (a surrogate must be half of a pair)"
        ) from None
