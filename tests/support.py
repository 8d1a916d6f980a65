"""Building workflow documents in tests: small node constructors and a chain helper."""

import itertools
from typing import Any

Doc = dict[str, Any]


def trigger(**config: Any) -> Doc:
    return {
        "id": "trigger",
        "type": "trigger",
        "name": "Start",
        "config": {"mode": "manual", **config},
    }


def delay(node_id: str, ms: float, **settings: Any) -> Doc:
    return {
        "id": node_id,
        "type": "delay",
        "name": f"Wait {node_id}",
        "config": {"ms": ms},
        **settings,
    }


def transform(node_id: str, output: Any, **settings: Any) -> Doc:
    return {
        "id": node_id,
        "type": "transform",
        "name": f"Make {node_id}",
        "config": {"output": output},
        **settings,
    }


def condition(node_id: str, expression: str) -> Doc:
    return {
        "id": node_id,
        "type": "condition",
        "name": f"Check {node_id}",
        "config": {"condition": expression},
    }


def fail(node_id: str, message: str, **settings: Any) -> Doc:
    return {
        "id": node_id,
        "type": "fail",
        "name": f"Fail {node_id}",
        "config": {"message": message},
        **settings,
    }


def response(node_id: str, output: Any) -> Doc:
    return {
        "id": node_id,
        "type": "response",
        "name": f"Reply {node_id}",
        "config": {"output": output},
    }


def edge(source: str, target: str, branch: str | None = None) -> Doc:
    return {"source": source, "target": target} | ({"branch": branch} if branch else {})


def workflow(nodes: list[Doc], edges: list[Doc], name: str = "Test workflow") -> Doc:
    return {"name": name, "nodes": nodes, "edges": edges}


def chain(*nodes: Doc, name: str = "Chain") -> Doc:
    """A workflow running `nodes` one after the other."""
    edges = [edge(a["id"], b["id"]) for a, b in itertools.pairwise(nodes)]
    return workflow(list(nodes), edges, name)
