"""`strict_json.dumps` writes large values a piece at a time, and the pieces make exactly the
text one call of the encoder would."""

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrux import strict_json

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=60,
)


def one_call(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@given(VALUES)
def test_pieces_make_the_text_of_one_call(value: Any) -> None:
    assert strict_json.dumps(value) == one_call(value)


@pytest.mark.parametrize("items", [0, 1, 999, 1_000, 1_001, 2_500])
def test_long_lists_and_objects_around_a_piece(items: int) -> None:
    values = [{"n": list(range(items))}, list(range(items)), {str(n): n for n in range(items)}]
    for value in values:
        assert strict_json.dumps(value) == one_call(value)


def test_what_json_cannot_carry_is_refused_in_any_piece() -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        strict_json.dumps({"x": [0] * 5_000 + [float("nan")]})


def longest_wait_of_another_thread(write: Callable[[], object]) -> float:
    """How long a thread that wants to run every millisecond waited at most during `write()`."""
    gaps: list[float] = []
    done = threading.Event()

    def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            time.sleep(0.001)
            gaps.append(time.perf_counter() - started)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        write()
    finally:
        done.set()
        thread.join()
    return max(gaps)


def test_a_large_value_lets_other_threads_run_while_it_is_written() -> None:
    value = {"input": {"a": [0] * 2_000_000}, "output": [[n] for n in range(200_000)]}
    one_call_wait = longest_wait_of_another_thread(lambda: one_call(value))
    pieces_wait = longest_wait_of_another_thread(lambda: strict_json.dumps(value))
    assert pieces_wait < one_call_wait / 3, (pieces_wait, one_call_wait)
