"""Random valid workflows (workflow.md) and what a run of one must do when nothing stops it.

A graph is a trigger and a few nodes, each fed by one or two earlier nodes (so branches run in
parallel and join), of the kinds whose behaviour depends on nothing outside: `delay` (a few ms to
~200 ms, some read from the trigger's data), `transform`, `response`, `condition` (over
`trigger.data` only; some of them error: a missing path, a string ordered against a number) and
`fail`, each node that can error with or without `onError: continue`. The prediction follows
workflow.md's rules: a node runs when one of its incoming edges is live; an edge is dead when its
source did not run, chose the other branch, or is a condition that errored; a node that errors
without `continue` fails the run.
"""

import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tests.support import (
    Doc,
    condition,
    delay,
    edge,
    fail,
    response,
    transform,
    trigger,
    workflow,
)

STATIC_DATA = {"n": 3, "tag": "red"}
TAGS = ("red", "blue", "green")
Check = Callable[[Mapping[str, Any]], bool | None]  # None: the condition errors


def _conditions(k: int) -> list[tuple[str, Check]]:
    """Expressions over the trigger's data, and what each evaluates to (None: an error)."""
    return [
        (f"trigger.data.n > {k}", lambda d: d["n"] > k),
        (f"trigger.data.n <= {k}", lambda d: d["n"] <= k),
        ("trigger.data.tag == 'red'", lambda d: d["tag"] == "red"),
        (
            f"trigger.data.tag != 'blue' and trigger.data.n >= {k}",
            lambda d: d["tag"] != "blue" and d["n"] >= k,
        ),
        (
            f"not (trigger.data.n == {k}) or trigger.data.tag == 'green'",
            lambda d: d["n"] != k or d["tag"] == "green",
        ),
        ("trigger.data.tag in 'red green'", lambda d: d["tag"] in "red green"),
        ("trigger.data.missing == 1", lambda d: None),  # a missing path is the node's error
        ("trigger.data.tag < 3", lambda d: None),  # a string is not ordered against a number
    ]


@attrs.frozen
class Prediction:
    """What a run of the graph does when nothing stops it."""

    status: str  # COMPLETED or FAILED
    live: frozenset[str]  # the nodes that run (all of them when COMPLETED; at most these else)
    node_status: Mapping[str, str]  # each live node's `node_complete` status in a whole run
    strict_failers: frozenset[str]  # live nodes whose error fails the run


@attrs.frozen
class RandomGraph:
    """A workflow document and, for each of its conditions, what it evaluates to."""

    name: str
    doc: Doc
    checks: Mapping[str, Check]
    continue_on_disconnect: bool

    @property
    def node_ids(self) -> list[str]:
        return [node["id"] for node in self.doc["nodes"]]

    def describe(self) -> str:
        """The graph in one line, for failure messages."""
        nodes = ", ".join(
            f"{n['id']}:{n['type']}{'/continue' if n.get('onError') == 'continue' else ''}"
            for n in self.doc["nodes"]
        )
        edges = ", ".join(
            f"{e['source']}->{e['target']}{'[' + e['branch'] + ']' if 'branch' in e else ''}"
            for e in self.doc["edges"]
        )
        return f"{self.name} (nodes {nodes}; edges {edges})"

    def predict(self, body: Mapping[str, Any]) -> Prediction:
        """What a run with `body` does when nothing stops it."""
        data = {**STATIC_DATA, **body}
        incoming: dict[str, list[Doc]] = {}
        for link in self.doc["edges"]:
            incoming.setdefault(link["target"], []).append(link)
        live, strict = {"trigger"}, set[str]()
        statuses, chose = {"trigger": "success"}, dict[str, str]()
        for node in self.doc["nodes"][1:]:  # in the document's order, which is topological
            node_id = node["id"]
            links = incoming[node_id]
            if not any(_live(link, live, strict, chose) for link in links):
                continue
            live.add(node_id)
            result = self.checks[node_id](data) if node["type"] == "condition" else True
            errors = node["type"] == "fail" or result is None
            statuses[node_id] = "error" if errors else "success"
            if errors and node.get("onError") != "continue":
                strict.add(node_id)
            elif node["type"] == "condition" and result is not None:
                chose[node_id] = "true" if result else "false"
        return Prediction(
            "FAILED" if strict else "COMPLETED", frozenset(live), statuses, frozenset(strict)
        )


def _live(link: Doc, live: set[str], strict: set[str], chose: Mapping[str, str]) -> bool:
    """Whether `link` carries its source's output on (see the module's doc)."""
    source = link["source"]
    if source not in live or source in strict:
        return False
    if "branch" in link:  # leaves a condition: live when it chose this branch
        return bool(chose.get(source) == link["branch"])
    return True


def random_graph(rng: random.Random, name: str, *, slow: bool = False) -> RandomGraph:
    """A random valid workflow of 2 to 9 nodes after its trigger; `slow`: its delays last
    0.2 to 1 s."""
    continue_on_disconnect = rng.random() < 0.2
    nodes: list[Doc] = [
        trigger(staticData=STATIC_DATA, continueOnDisconnect=continue_on_disconnect)
    ]
    edges: list[Doc] = []
    checks: dict[str, Check] = {}
    for index in range(1, rng.randint(2, 9) + 1):
        node_id = f"n{index}"
        nodes.append(_random_node(rng, node_id, checks, slow))
        sources = rng.sample(nodes[:-1], k=2 if len(nodes) > 2 and rng.random() < 0.3 else 1)
        for source in sources:
            branch = rng.choice(("true", "false")) if source["type"] == "condition" else None
            edges.append(edge(source["id"], node_id, branch))
    return RandomGraph(name, workflow(nodes, edges, name), checks, continue_on_disconnect)


def _random_node(rng: random.Random, node_id: str, checks: dict[str, Check], slow: bool) -> Doc:
    """One node of a random kind; a condition's check goes into `checks`."""
    on_error = {"onError": "continue"} if rng.random() < 0.6 else {}
    kind = rng.choices(
        ("delay", "transform", "condition", "fail", "response"), weights=(35, 20, 25, 12, 8)
    )[0]
    match kind:
        case "delay":
            ms: int | str = "{{trigger.data.n}}" if rng.random() < 0.15 else _delay_ms(rng)
            if slow:
                ms = rng.randint(200, 1000)
            return delay(node_id, ms)
        case "transform":
            return transform(node_id, {"tag": "{{trigger.data.tag}}", "at": node_id})
        case "response":
            return response(node_id, {"n": "{{trigger.data.n}}", "from": node_id})
        case "condition":
            candidates = _conditions(rng.randint(0, 9))
            # Conditions that error are the last two: one in eight of the conditions drawn.
            expression, check = rng.choice(candidates)
            checks[node_id] = check
            return condition(node_id, expression, **on_error)
        case _:
            message = rng.choice(("boom", "no luck for {{trigger.data.tag}}"))
            return fail(node_id, message, **on_error)


def _delay_ms(rng: random.Random) -> int:
    """Mostly a few ms, sometimes up to 200 ms, so that Stops and disconnects find runs
    mid-way."""
    return rng.choice((rng.randint(1, 20), rng.randint(20, 80), rng.randint(80, 200)))


def random_body(rng: random.Random) -> dict[str, Any]:
    """A trigger body over STATIC_DATA: it may set `n`, `tag`, both or neither."""
    body: dict[str, Any] = {}
    if rng.random() < 0.8:
        body["n"] = rng.randint(0, 9)
    if rng.random() < 0.8:
        body["tag"] = rng.choice(TAGS)
    return body
