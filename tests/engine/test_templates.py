import copy
import tracemalloc
from typing import Any

import pytest

from flowtrux.engine.errors import MissingPath
from flowtrux.engine.paths import check_root, is_valid_path, resolve, root_of
from flowtrux.engine.sizes import OutputTooLarge, Sizes
from flowtrux.engine.templates import render, template_paths, template_problems

LIMIT = 1_000_000
SCOPE: dict[str, Any] = {
    "trigger": {"data": {"name": "Ada", "count": 3, "ratio": 0.5, "tags": ["a", "b"]}},
    "agent-1": {
        "output": {
            "priority": "high",
            "done": True,
            "note": None,
            "details": {"city": "Zürich", "codes": [1, 2]},
            "items": [{"id": "x"}, {"id": "y"}],
        }
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("trigger.data.name", "Ada"),
        ("agent-1.output.priority", "high"),
        ("agent-1.output.note", None),
        ("agent-1.output.items.1.id", "y"),
        ("trigger.data.tags.0", "a"),
        ("trigger.data", SCOPE["trigger"]["data"]),
    ],
)
def test_resolve_reads_keys_and_list_indexes(path: str, expected: Any) -> None:
    assert resolve(SCOPE, path) == expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("trigger.data.missing", "no key 'missing' in trigger.data"),
        ("nobody.output", "no key 'nobody' in the scope"),
        ("trigger.data.tags.2", "index 2 out of range for list of 2 at trigger.data.tags"),
        ("trigger.data.tags.first", "'first' is not a list index (trigger.data.tags is a list)"),
        ("trigger.data.name.first", "cannot read 'first' of a string at trigger.data.name"),
        ("agent-1.output.note.x", "cannot read 'x' of null at agent-1.output.note"),
        ("trigger.data.count.x", "cannot read 'x' of a number at trigger.data.count"),
    ],
)
def test_resolve_names_path_and_failing_segment(path: str, reason: str) -> None:
    with pytest.raises(MissingPath) as caught:
        resolve(SCOPE, path)
    assert caught.value.path == path
    assert str(caught.value) == f"missing value at path '{path}' ({reason})"


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("trigger.data.x", True),
        ("agent-1.output.items.0", True),
        ("node_2.output", True),
        ("trigger", False),
        ("a..b", False),
        ("a.b.", False),
        ("a.b c", False),
        ("a.b\n", False),
    ],
)
def test_path_syntax(text: str, valid: bool) -> None:
    assert is_valid_path(text) is valid


def test_root_of_and_check_root() -> None:
    assert root_of("agent-1.output.x") == "agent-1"
    assert check_root("agent-1.output.x") is None
    assert check_root("trigger.data") is None
    assert check_root("agent-1.result") == (
        "path 'agent-1.result' must read '<nodeId>.output' or 'trigger.data'"
    )
    assert check_root("trigger.output.x") is not None


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ agent-1.output.details }}", {"city": "Zürich", "codes": [1, 2]}),
        ("{{agent-1.output.details.codes}}", [1, 2]),
        ("{{ trigger.data.count }}", 3),
        ("{{ agent-1.output.done }}", True),
        ("{{ agent-1.output.note }}", None),
        ("{{\ttrigger.data.name\n}}", "Ada"),
    ],
)
def test_whole_string_template_keeps_the_type(template: str, expected: Any) -> None:
    assert render(template, SCOPE, Sizes(LIMIT).budget()) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{ trigger.data.name }}!", "Hi Ada!"),
        ("n={{ trigger.data.count }} r={{ trigger.data.ratio }}", "n=3 r=0.5"),
        ("done: {{ agent-1.output.done }}", "done: true"),
        ("note: {{ agent-1.output.note }}", "note: null"),
        ("{{ agent-1.output.details }} ", '{"city":"Zürich","codes":[1,2]} '),
        (" {{ trigger.data.tags }}", ' ["a","b"]'),
        ("{{ trigger.data.name }}{{ trigger.data.count }}", "Ada3"),
        ("no templates here", "no templates here"),
        ("left open {{ trigger.data.name", "left open {{ trigger.data.name"),
    ],
)
def test_templates_inside_text_render_as_text(template: str, expected: str) -> None:
    assert render(template, SCOPE, Sizes(LIMIT).budget()) == expected


def test_render_walks_values_not_keys_and_leaves_config_and_scope_alone() -> None:
    config = {
        "{{ trigger.data.name }}": "{{ trigger.data.name }}",
        "list": [
            "{{ agent-1.output.items.0 }}",
            7,
            None,
            False,
            {"deep": "x={{ trigger.data.count }}"},
        ],
    }
    before = copy.deepcopy(config)
    rendered = render(config, SCOPE, Sizes(LIMIT).budget())
    assert rendered == {
        "{{ trigger.data.name }}": "Ada",
        "list": [{"id": "x"}, 7, None, False, {"deep": "x=3"}],
    }
    assert config == before
    # A value taken whole is the value itself: rendering never copies what it reads.
    assert rendered["list"][0] is SCOPE["agent-1"]["output"]["items"][0]


def test_text_longer_than_the_limit_is_refused_before_it_is_written() -> None:
    scope = {"big": {"output": "x" * 1000}}
    assert (
        len(render("{{big.output}}-{{big.output}}", scope, Sizes(2003).budget())) == 2001
    )  # + quotes
    with pytest.raises(OutputTooLarge, match="larger than 2,002 bytes"):
        render("{{big.output}}-{{big.output}}", scope, Sizes(2002).budget())


def test_rendering_stops_building_once_over_the_limit() -> None:
    scope = {"trigger": {"data": {"s": "x" * 100_000}}}
    config = ["x{{trigger.data.s}}"] * 2_000  # 200 MB if it were all built
    tracemalloc.start()
    try:
        with pytest.raises(OutputTooLarge):
            render(config, scope, Sizes(1_000_000).budget())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000


def test_values_shared_whole_count_at_their_size() -> None:
    scope = {"big": {"output": ["x" * 1000] * 10}}  # 10,031 bytes of JSON
    assert render(["{{big.output}}"], scope, Sizes(10_033).budget()) == [scope["big"]["output"]]
    with pytest.raises(OutputTooLarge):
        render(["{{big.output}}", "{{big.output}}"], scope, Sizes(20_000).budget())


@pytest.mark.parametrize(
    "template",
    ["{{ trigger.data.nope }}", "value: {{ trigger.data.nope }}", ["{{ trigger.data.nope }}"]],
)
def test_missing_path_names_the_path(template: Any) -> None:
    with pytest.raises(MissingPath, match=r"trigger\.data\.nope") as caught:
        render(template, SCOPE, Sizes(LIMIT).budget())
    assert caught.value.path == "trigger.data.nope"


def test_template_paths_in_order_without_repeats() -> None:
    config = {
        "a": "{{ b.output.x }} and {{ trigger.data.y }}",
        "b": ["{{b.output.x}}", {"c": "{{ c-1.output.items.0 }}"}],
        "bad": "{{ not a path }} {{ }} {{ unclosed.output",
        "{{ key.output }}": 1,
    }
    assert template_paths(config) == ["b.output.x", "trigger.data.y", "c-1.output.items.0"]


def test_template_problems_quote_the_offending_template() -> None:
    config = {
        "fine": "{{ trigger.data.x }} {{ a.output }}",
        "empty": "x {{ }} y",
        "words": "{{ hello world }}",
        "root": ["{{ agent-1.result }}", "{{ agent-1.result }}"],
        "open": "tail {{ trigger.data.x",
    }
    assert template_problems(config) == [
        "template '{{ }}' is empty",
        "template '{{ hello world }}' does not contain a path"
        " (paths look like trigger.data.x or node-id.output.x)",
        "template '{{ agent-1.result }}': path 'agent-1.result' must read '<nodeId>.output'"
        " or 'trigger.data'",
        "template '{{ trigger.data.x' is not closed with '}}'",
    ]
    assert template_problems({"ok": ["{{ trigger.data.x }}", 3]}) == []


@pytest.mark.parametrize("template", ["{{ }}", "a {{ hello world }} b"])
def test_a_template_without_a_path_cannot_render(template: str) -> None:
    with pytest.raises(MissingPath, match="does not contain a valid path"):
        render(template, SCOPE, Sizes(LIMIT).budget())
