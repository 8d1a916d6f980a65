"""Validation of a workflow document: every problem at once, each with where it is.

The shape is checked with JSON Schema (the document's and each node type's); what a schema cannot
say (one trigger, edges between existing nodes, no cycle, reachability, templates that read only
upstream nodes) is checked on the graph. Pure and synchronous.
"""

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from jsonschema import Draft202012Validator

from flowtrux.engine.nodes import NODE_TYPES
from flowtrux.engine.paths import root_of

NODE_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"

DOCUMENT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "nodes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": NODE_ID_PATTERN},
                    "type": {"type": "string"},
                    "name": {"type": "string", "maxLength": 200},
                    "config": {"type": "object"},
                    "timeoutMs": {"type": "integer", "minimum": 1},
                    "retry": {
                        "type": "object",
                        "properties": {
                            "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 10},
                            "backoffMs": {"type": "integer", "minimum": 0, "maximum": 600_000},
                        },
                        "additionalProperties": False,
                    },
                    "onError": {"enum": ["fail", "continue"]},
                },
                "required": ["id", "type"],
            },
        },
        "edges": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                    "branch": {"enum": ["true", "false"]},
                },
                "required": ["source", "target"],
            },
        },
    },
    "required": ["name", "nodes", "edges"],
}


@attrs.frozen
class Problem:
    path: str  # where in the document, e.g. "nodes[2].config.ms"
    message: str


Entries = list[tuple[int, Mapping[str, Any]]]  # (index in the document, entry)


def validate_workflow(doc: Any) -> list[Problem]:
    """Every problem of a workflow document `{name, nodes, edges}`; empty when it is valid.

    Checks that need an entry in good shape skip the entries that are not (their problems are
    listed already), and the graph checks run once the nodes and edges form a graph at all.
    """
    errors = sorted(
        Draft202012Validator(DOCUMENT_SCHEMA).iter_errors(doc),
        key=lambda error: list(error.absolute_path),
    )
    problems = [Problem(_format_path("", error.absolute_path), error.message) for error in errors]
    broken = {tuple(error.absolute_path)[:2] for error in errors}
    if broken & {(), ("nodes",), ("edges",)}:
        return problems  # no list of nodes or of edges to look into
    nodes = [(i, n) for i, n in enumerate(doc["nodes"]) if ("nodes", i) not in broken]
    edges = [(i, e) for i, e in enumerate(doc["edges"]) if ("edges", i) not in broken]
    id_problems = list(_id_problems(nodes))
    config_problems = {i: list(_config_problems(node, f"nodes[{i}]")) for i, node in nodes}
    edge_problems = list(_edge_problems(_types_by_id(doc["nodes"]), edges))
    problems += id_problems + [p for found in config_problems.values() for p in found]
    problems += edge_problems
    whole = len(nodes) == len(doc["nodes"]) and len(edges) == len(doc["edges"])
    if whole and not (id_problems or edge_problems):
        well_configured = {i for i, found in config_problems.items() if not found}
        problems += _graph_problems(nodes, [edge for _, edge in edges], well_configured)
    return problems


def _schema_problems(validator: Draft202012Validator, value: Any, prefix: str) -> Iterator[Problem]:
    for error in sorted(validator.iter_errors(value), key=lambda error: list(error.path)):
        yield Problem(_format_path(prefix, error.absolute_path), error.message)


def _format_path(prefix: str, parts: Iterable[str | int]) -> str:
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _types_by_id(nodes: Sequence[Any]) -> dict[str, Any]:
    return {
        node["id"]: node.get("type")
        for node in nodes
        if isinstance(node, Mapping) and isinstance(node.get("id"), str)
    }


def _id_problems(nodes: Entries) -> Iterator[Problem]:
    triggers = [i for i, node in nodes if node["type"] == "trigger"]
    if len(triggers) != 1:
        yield Problem("nodes", f"a workflow needs exactly one trigger node, found {len(triggers)}")
    seen: set[str] = set()
    for i, node in nodes:
        if node["id"] in seen:
            yield Problem(f"nodes[{i}].id", f"node id '{node['id']}' is used more than once")
        seen.add(node["id"])
        if node["id"] == "trigger" and node["type"] != "trigger":
            yield Problem(f"nodes[{i}].id", "the id 'trigger' is reserved for the trigger node")


def _config_problems(node: Mapping[str, Any], where: str) -> Iterator[Problem]:
    node_type = NODE_TYPES.get(node["type"])
    if node_type is None:
        known = ", ".join(NODE_TYPES)
        yield Problem(f"{where}.type", f"unknown node type '{node['type']}' (known: {known})")
        return
    config = node.get("config", {})
    schema_problems = list(
        _schema_problems(Draft202012Validator(node_type.config_schema), config, f"{where}.config")
    )
    yield from schema_problems
    if not schema_problems:
        for message in node_type.problems(config):
            yield Problem(f"{where}.config", message)


def _edge_problems(types: Mapping[str, Any], edges: Entries) -> Iterator[Problem]:
    seen: set[tuple[str, str]] = set()
    for i, edge in edges:
        where = f"edges[{i}]"
        for end in ("source", "target"):
            if edge[end] not in types:
                yield Problem(f"{where}.{end}", f"no node has the id '{edge[end]}'")
        if "branch" in edge and types.get(edge["source"]) != "condition":
            yield Problem(f"{where}.branch", "only edges leaving a condition node have a branch")
        pair = (edge["source"], edge["target"])
        if pair in seen:
            yield Problem(where, f"the edge {pair[0]} -> {pair[1]} is listed more than once")
        seen.add(pair)


def _graph_problems(
    nodes: Entries, edges: Sequence[Mapping[str, Any]], well_configured: set[int]
) -> Iterator[Problem]:
    successors: dict[str, list[str]] = {node["id"]: [] for _, node in nodes}
    predecessors: dict[str, list[str]] = {node["id"]: [] for _, node in nodes}
    for edge in edges:
        successors[edge["source"]].append(edge["target"])
        predecessors[edge["target"]].append(edge["source"])
    in_cycle = _nodes_in_or_behind_cycles(successors, predecessors)
    if in_cycle:
        yield Problem("edges", f"the edges form a cycle through: {', '.join(sorted(in_cycle))}")
    trigger = next(node["id"] for _, node in nodes if node["type"] == "trigger")
    reachable = _reachable(trigger, successors)
    for i, node in nodes:
        if node["id"] not in reachable:
            yield Problem(f"nodes[{i}]", f"node '{node['id']}' cannot be reached from the trigger")
        elif not in_cycle and i in well_configured and node["type"] != "trigger":
            yield from _reference_problems(node, f"nodes[{i}].config", predecessors)


def _nodes_in_or_behind_cycles(
    successors: Mapping[str, list[str]], predecessors: Mapping[str, list[str]]
) -> set[str]:
    """Kahn's algorithm: what cannot be ordered is on a cycle or downstream of one."""
    waiting = {node_id: len(sources) for node_id, sources in predecessors.items()}
    ready = deque(node_id for node_id, count in waiting.items() if count == 0)
    while ready:
        for target in successors[ready.popleft()]:
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return {node_id for node_id, count in waiting.items() if count > 0}


def _reachable(start: str, neighbours: Mapping[str, list[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for other in neighbours[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _reference_problems(
    node: Mapping[str, Any], where: str, predecessors: Mapping[str, list[str]]
) -> Iterator[Problem]:
    roots = {root_of(path): path for path in NODE_TYPES[node["type"]].paths(node.get("config", {}))}
    roots.pop("trigger", None)
    if not roots:
        return
    upstream = _reachable(node["id"], predecessors) - {node["id"]}
    for root, path in roots.items():
        if root not in upstream:
            yield Problem(
                where, f"'{path}' reads node '{root}', which is not upstream of this node"
            )
