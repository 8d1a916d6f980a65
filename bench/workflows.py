"""Workflow documents for the benchmarks (the JSON the API takes)."""

import itertools
from typing import Any

Doc = dict[str, Any]

TRIGGER_ID = "trigger"


def trigger() -> Doc:
    return {"id": TRIGGER_ID, "type": "trigger", "name": "Start", "config": {"mode": "manual"}}


def delay(node_id: str, ms: float) -> Doc:
    return {"id": node_id, "type": "delay", "name": f"Wait {node_id}", "config": {"ms": ms}}


def transform(node_id: str) -> Doc:
    """A transform rendering a small template from the trigger's data."""
    output = {"i": "{{trigger.data.x}}"}
    return {"id": node_id, "type": "transform", "name": node_id, "config": {"output": output}}


def reading_transform(node_id: str, previous: str) -> Doc:
    """A transform reading the trigger's data and the output of node `previous`."""
    output = {"x": "{{trigger.data.x}}", "previous": f"{{{{{previous}.output}}}}"}
    return {"id": node_id, "type": "transform", "name": node_id, "config": {"output": output}}


def edge(source: str, target: str) -> Doc:
    return {"source": source, "target": target}


def chain(nodes: list[Doc]) -> tuple[list[Doc], list[Doc]]:
    """`nodes` one after the other: (nodes, edges)."""
    return nodes, [edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]


def transform_chain(length: int) -> tuple[list[Doc], list[Doc]]:
    """trigger -> t1 -> ... -> t`length`."""
    return chain([trigger(), *(transform(f"t{i}") for i in range(1, length + 1))])


def reading_chain(length: int) -> tuple[list[Doc], list[Doc]]:
    """trigger -> t1 -> ... -> t`length`, each transform reading the trigger's data and the
    output of the one before it (t1 reads the trigger's data only): what validation checks."""
    nodes = [trigger(), transform("t1")]
    nodes += (reading_transform(f"t{i}", f"t{i - 1}") for i in range(2, length + 1))
    return chain(nodes)


def fan_out(width: int) -> tuple[list[Doc], list[Doc]]:
    """trigger -> `width` parallel transforms -> one join transform."""
    branches = [transform(f"t{i}") for i in range(1, width + 1)]
    edges = [edge(TRIGGER_ID, node["id"]) for node in branches]
    edges += [edge(node["id"], "join") for node in branches]
    return [trigger(), *branches, transform("join")], edges
