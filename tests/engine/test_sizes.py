from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrux.engine.sizes import OutputNotStorable, OutputTooLarge, Sizes
from flowtrux.strict_json import MAX_DEPTH, dumps

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # control characters, quotes, backslashes, non-ASCII, astral
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_the_limit_is_the_size_of_the_stored_json_to_the_byte(value: Any) -> None:
    size = len(dumps(value).encode("utf-8"))
    Sizes(size).check_now(value)
    with pytest.raises(OutputTooLarge):
        Sizes(size - 1).check_now(value)


def test_shared_values_are_measured_without_being_written_out() -> None:
    value: Any = "x" * 1000
    for _ in range(60):  # 2**60 KB of JSON, 60 lists
        value = [value, value]
    with pytest.raises(OutputTooLarge, match="larger than 4,194,304 bytes"):
        Sizes(4 * 1024 * 1024).check_now(value)


def test_an_output_nested_deeper_than_readers_take_is_refused() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    Sizes(10**6).check_now(value)
    with pytest.raises(OutputNotStorable, match="nested deeper than 64"):
        Sizes(10**6).check_now([value])


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_json_does_not_have_are_refused(number: float) -> None:
    with pytest.raises(OutputNotStorable, match="which JSON does not have"):
        Sizes(10**6).check_now({"x": number})


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(OutputNotStorable, match="holds a bytes"):
        Sizes(10**6).check_now([b"raw"])
