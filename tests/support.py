"""Building workflow documents in tests: small node constructors and a chain helper."""

import itertools
from typing import Any

Doc = dict[str, Any]


def node(node_id: str, node_type: str, config: Doc | None = None, **settings: Any) -> Doc:
    """A node document; `settings` are the node-level keys (name, timeoutMs, retry, onError)."""
    return {"id": node_id, "type": node_type, "config": config or {}, **settings}


def named(verb: str, node_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"{verb} {node_id}", **settings}


def trigger(**config: Any) -> Doc:
    return node("trigger", "trigger", {"mode": "manual", **config}, name="Start")


def delay(node_id: str, ms: Any, **settings: Any) -> Doc:
    return node(node_id, "delay", {"ms": ms}, **named("Wait", node_id, settings))


def transform(node_id: str, output: Any, **settings: Any) -> Doc:
    return node(node_id, "transform", {"output": output}, **named("Make", node_id, settings))


def condition(node_id: str, expression: str, **settings: Any) -> Doc:
    config = {"condition": expression}
    return node(node_id, "condition", config, **named("Check", node_id, settings))


def fail(node_id: str, message: str, **settings: Any) -> Doc:
    return node(node_id, "fail", {"message": message}, **named("Fail", node_id, settings))


def response(node_id: str, output: Any, **settings: Any) -> Doc:
    return node(node_id, "response", {"output": output}, **named("Reply", node_id, settings))


def http(node_id: str, config: Doc, **settings: Any) -> Doc:
    return node(node_id, "http", config, **named("Call", node_id, settings))


def agent(node_id: str, config: Doc, **settings: Any) -> Doc:
    return node(node_id, "agent", config, **named("Ask", node_id, settings))


def edge(source: str, target: str, branch: str | None = None) -> Doc:
    return {"source": source, "target": target} | ({"branch": branch} if branch else {})


def workflow(nodes: list[Doc], edges: list[Doc], name: str = "Test workflow") -> Doc:
    return {"name": name, "nodes": nodes, "edges": edges}


def chain(*nodes: Doc, name: str = "Chain") -> Doc:
    """A workflow running `nodes` one after the other."""
    edges = [edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]
    return workflow(list(nodes), edges, name)
