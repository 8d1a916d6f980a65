"""Parsed workflow documents are kept while their stored text is the same, within a byte budget."""

import json

from flowtrux.store.workflows import Documents
from tests.support import chain, transform, trigger


def text(*outputs: str) -> str:
    doc = chain(trigger(), *(transform(f"t{i}", out) for i, out in enumerate(outputs)))
    return json.dumps({"nodes": doc["nodes"], "edges": doc["edges"]})


def test_the_same_text_is_parsed_once_and_a_changed_one_again() -> None:
    documents = Documents()
    first = documents.parse("wf-1", text("a"))
    assert documents.parse("wf-1", text("a")) is first
    changed = documents.parse("wf-1", text("b"))
    assert changed is not first
    assert changed.nodes[1]["config"]["output"] == "b"
    assert [node.id for node in changed.graph.nodes] == ["trigger", "t0"]


def test_what_is_kept_stays_within_its_bytes_the_least_recently_used_going_first() -> None:
    one = text("x" * 300)
    documents = Documents(max_bytes=4 * len(one))
    kept = {name: documents.parse(name, one) for name in ("a", "b", "c", "d")}
    assert documents.parse("a", one) is kept["a"]  # now the most recently used
    documents.parse("e", one)  # over the budget: "b" goes
    assert documents.parse("b", one) is not kept["b"]
    assert documents.parse("a", one) is kept["a"]


def test_a_document_larger_than_a_quarter_of_the_budget_is_never_kept() -> None:
    large = text("x" * 2_000)
    documents = Documents(max_bytes=len(large))
    assert documents.parse("wf-1", large) is not documents.parse("wf-1", large)
