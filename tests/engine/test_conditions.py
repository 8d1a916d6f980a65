import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrux.engine.conditions import Evaluation, parse_condition
from flowtrux.engine.conditions import evaluate as evaluate_condition
from flowtrux.engine.errors import ConditionError, ConditionSyntaxError, MissingPath

SCOPE: dict[str, Any] = {
    "trigger": {
        "data": {
            "n": 5,
            "ratio": 0.5,
            "name": "Ada Lovelace",
            "tags": ["urgent", 2, True, None, {"k": 1}],
            "meta": {"owner": "ops"},
            "on": True,
            "off": False,
            "nothing": None,
            "empty": "",
        }
    },
    "agent-1": {"output": {"priority": "high", "score": -2.5}},
}


def evaluate(text: str) -> Evaluation:
    return evaluate_condition(parse_condition(text), SCOPE)


def check(text: str) -> bool:
    return evaluate(text).result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # comparisons
        ("trigger.data.n == 5", True),
        ("trigger.data.n == 5.0", True),
        ("trigger.data.n != 5", False),
        ("trigger.data.n < 6", True),
        ("trigger.data.n <= 5", True),
        ("trigger.data.n > 5", False),
        ("trigger.data.n >= 5.5", False),
        ("trigger.data.ratio < 1", True),
        ("'abc' < 'abd'", True),
        ("agent-1.output.priority == 'high'", True),
        ("agent-1.output.priority=='high'", True),
        ("agent-1.output.score == -2.5", True),
        ("agent-1.output.score < -2", True),
        ("trigger.data.n>-1", True),
        ("trigger.data.nothing == null", True),
        ("trigger.data.meta == trigger.data.meta", True),
        ("trigger.data.tags != trigger.data.tags", False),
        # JSON equality: booleans are not numbers
        ("true == 1", False),
        ("trigger.data.on == 1", False),
        ("trigger.data.off == 0", False),
        ("trigger.data.on == true", True),
        ("null == false", False),
        ("'5' == 5", False),
        # membership
        ("'urgent' in trigger.data.tags", True),
        ("2.0 in trigger.data.tags", True),
        ("1 in trigger.data.tags", False),
        ("null in trigger.data.tags", True),
        ("'nope' not in trigger.data.tags", True),
        ("'Love' in trigger.data.name", True),
        ("'love' in trigger.data.name", False),
        ("'owner' in trigger.data.meta", True),
        ("'ops' in trigger.data.meta", False),
        ("'owner' not in trigger.data.meta", False),
        ("'x' not\tin  trigger.data.meta", True),
        # truthiness, precedence, parentheses
        ("trigger.data.n", True),
        ("trigger.data.empty", False),
        ("trigger.data.nothing", False),
        ("not trigger.data.empty", True),
        ("not not trigger.data.n", True),
        ("not false or false", True),
        ("not (false or true)", False),
        ("true or true and false", True),
        ("(true or true) and false", False),
        ("false and true or true", True),
        ("false and (true or true)", False),
        ("not trigger.data.n == 4", True),
        (
            "trigger.data.n > 1 and agent-1.output.priority in 'high low' and not trigger.data.off",
            True,
        ),
        ("'it\\'s' == \"it's\"", True),
        ("'a\\\\b' == \"a\\\\b\"", True),
        ('\'\\n\\t\\"\' == "\n\t\\""', True),
    ],
)
def test_results(text: str, expected: bool) -> None:
    assert check(text) is expected


def test_short_circuit_does_not_read_the_other_side() -> None:
    assert check("true or trigger.data.missing") is True
    assert check("false and nobody.output.x") is False
    assert evaluate("trigger.data.on or trigger.data.missing").variables == {
        "trigger.data.on": True
    }
    with pytest.raises(MissingPath, match=r"trigger\.data\.missing"):
        check("false or trigger.data.missing")


def test_variables_hold_each_path_read_in_order() -> None:
    evaluation = evaluate(
        "agent-1.output.priority == 'high' and trigger.data.n > 1 and agent-1.output.priority != ''"
    )
    assert evaluation == Evaluation(
        result=True, variables={"agent-1.output.priority": "high", "trigger.data.n": 5}
    )
    assert list(evaluation.variables) == ["agent-1.output.priority", "trigger.data.n"]


def test_paths_are_listed_for_validation_without_repeats() -> None:
    condition = parse_condition("b.output.x or (trigger.data.y and not b.output.x in c-1.output.l)")
    assert condition.paths == ("b.output.x", "trigger.data.y", "c-1.output.l")
    assert condition.text == "b.output.x or (trigger.data.y and not b.output.x in c-1.output.l)"
    assert parse_condition("1 == 1").paths == ()


def test_a_text_is_parsed_once_and_its_condition_reused() -> None:
    text = "trigger.data.n > 3 and agent-1.output.priority == 'high'"
    assert parse_condition(text) is parse_condition(text)
    assert evaluate(text).result is True


def test_whitespace_between_tokens_does_not_matter() -> None:
    assert parse_condition("a.b==c.d or(not -1<x.y)").tree == (
        parse_condition(" a.b  ==\tc.d\nor ( not -1 < x.y ) ").tree
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trigger.data.name < 5", "cannot compare string 'Ada Lovelace' with number 5 using '<'"),
        ("trigger.data.on >= 0", "cannot compare boolean true with number 0 using '>='"),
        ("trigger.data.nothing > 1", "cannot compare null with number 1 using '>'"),
        ("trigger.data.tags < 'x'", """cannot compare list ["urgent",2,true,null,{"k":1}] with"""),
        ("1 in trigger.data.n", "cannot use 'in' with number 1 and number 5: the right side must"),
        ("1 in trigger.data.name", "only a string can be looked for in a string"),
        ("1 not in trigger.data.meta", "cannot use 'not in' with number 1 and object"),
    ],
)
def test_type_errors_are_readable(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        check(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected an expression at column 1 (the condition is empty)"),
        ("   ", "expected an expression at column 1 (the condition is empty)"),
        ("a.output == (1))", "unexpected ')' at column 16"),
        ("a.output b.output", "unexpected 'b.output' at column 10"),
        ("a.output not b.output", "unexpected 'not' at column 10"),
        ("== 1", "unexpected '==' at column 1"),
        ("not in a.b", "unexpected 'not in' at column 1"),
        ("a.output and", "expected an expression after 'and' at column 10"),
        ("a.output or (", "expected an expression after '(' at column 13"),
        ("not", "expected an expression after 'not' at column 1"),
        ("a.output >=", "expected an expression after '>=' at column 10"),
        ("1 not in", "expected an expression after 'not in' at column 3"),
        ("(a.output", "missing ')' to close '(' at column 1"),
        ("(a.output 2)", "unexpected '2' at column 11: missing ')' to close '(' at column 1"),
        ("a.output == 'abc", "unterminated string starting at column 13"),
        ('"abc\\"', "unterminated string starting at column 1"),
        ("'a\\qb'", "unknown escape '\\q' at column 3"),
        ("foo == 1", "unknown word 'foo' at column 1 (paths look like trigger.data.x or"),
        ("a.output == yes", "unknown word 'yes' at column 13"),
        ("a.output == True", "unknown word 'True' at column 13 (did you mean 'true'?)"),
        ("a.output AND b.output", "unknown word 'AND' at column 10 (did you mean 'and'?)"),
        ("a.b. == 1", "unknown word 'a.b.' at column 1"),
        ("not-1 == 1", "unknown word 'not-1' at column 1"),
        ("1e5 == 1", "unknown word '1e5' at column 1"),
        ("a.output = 1", "unexpected character '=' at column 10 (use '==' to compare)"),
        ("a.output && b.output", "unexpected character '&' at column 10 (use 'and')"),
        ("a.output[0]", "unexpected character '[' at column 9"),
        ("1 < a.output < 3", "comparisons cannot be chained: '<' at column 14 follows '<'"),
        ("1 == 1 not in a.b", "comparisons cannot be chained: 'not in' at column 8 follows '=='"),
        ("(" * 51 + "1" + ")" * 51, "'(' at column 51 nests deeper than 50 levels"),
        ("not " * 51 + "true", "'not' at column 201 nests deeper than 50 levels"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    assert str(caught.value).startswith(message)


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert check("(" * 50 + "1" + ")" * 50) is True
    assert check("not " * 50 + "true") is True


WORDS = ["a.b", "x-1.output.y", "1", "-2.5", "'s'", '"t\\n"', "true", "null", "and", "or"]
WORDS += ["not", "in", "==", "!=", "<", "<=", ">", ">=", "(", ")", "'", "\\", "=", "!", "foo", "."]


@given(st.text())
def test_any_text_parses_or_raises_a_syntax_error(text: str) -> None:
    with contextlib.suppress(ConditionSyntaxError):
        parse_condition(text)


@given(st.lists(st.sampled_from(WORDS), max_size=30))
def test_token_soup_parses_or_raises_a_syntax_error(words: list[str]) -> None:
    try:
        condition = parse_condition(" ".join(words))
    except ConditionSyntaxError:
        return
    assert set(condition.paths) <= {"a.b", "x-1.output.y"}
