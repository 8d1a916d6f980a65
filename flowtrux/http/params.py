"""Numbers in query parameters and headers: ASCII digits only, bounded before they are used.

`str.isdigit()` admits "²" and digits of any length; a value that reaches the store unbounded
can overflow its integers in the middle of a stream.
"""

import re

from flowtrux.errors import BadRequest

_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_SEQ = 2**53 - 1  # an event id a JavaScript client can hold exactly


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """`text` as a whole number from `low` to `high`. Raises BadRequest naming `name`."""
    if _DIGITS.fullmatch(text) is None or not low <= int(text) <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}.")
    return int(text)


def declared_length(header: str | None) -> int | None:
    """A Content-Length header's value, or None when it is absent or not a plain number (the
    server's HTTP parser judges those; the body is still read with a limit)."""
    if header is None or _DIGITS.fullmatch(header) is None:
        return None
    return int(header)
