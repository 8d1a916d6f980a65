"""validate_workflow: every rule of workflow.md's "Validation", each problem with where it is."""

import copy
from typing import Any

import pytest

from flowtrux.engine.validation import Problem, validate_workflow
from tests.engine.builders import (
    Doc,
    condition,
    delay,
    fail,
    node,
    response,
    transform,
    trigger,
    workflow,
)


def valid_doc() -> Doc:
    """One node of every type, a condition with both branches, templates reading upstream."""
    return workflow(
        [
            trigger(mode="manual", staticData={"source": "web"}, continueOnDisconnect=False),
            transform("shape", {"who": "{{trigger.data.name}}", "n": 1}),
            condition("urgent", "shape.output.n >= 1 and trigger.data.source == 'web'"),
            delay("wait", "{{trigger.data.waitMs}}", timeoutMs=5000),
            fail("give_up", "not urgent: {{shape.output.who}}", onError="continue"),
            response(
                "reply", {"who": "{{shape.output.who}}", "waited": "{{wait.output.waitedMs}}"}
            ),
        ],
        "trigger > shape > urgent",
        "urgent >true> wait > reply",
        "urgent >false> give_up",
    )


def paths(problems: list[Problem]) -> list[str]:
    return [problem.path for problem in problems]


def only_problem(doc: Any) -> Problem:
    problems = validate_workflow(doc)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_document_has_no_problems() -> None:
    assert validate_workflow(valid_doc()) == []


def test_validation_does_not_change_the_document() -> None:
    doc = valid_doc()
    doc["nodes"].append(delay("orphan", -1))
    before = copy.deepcopy(doc)
    assert validate_workflow(doc) != []
    assert doc == before


def test_unknown_extra_fields_are_allowed() -> None:
    doc = valid_doc()
    doc |= {"id": "wf-8f3k2", "workspaceId": "ws-1a2b", "description": "editor metadata"}
    for i, each in enumerate(doc["nodes"]):
        each["position"] = {"x": 120 * i, "y": 40}
        each["notes"] = "placed by the editor"
    for each in doc["edges"]:
        each["id"] = f"e-{each['source']}-{each['target']}"
    assert validate_workflow(doc) == []


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        pytest.param(None, "", "is not of type 'object'", id="not-an-object"),
        pytest.param(
            {"name": "x", "nodes": [trigger()]}, "", "'edges' is a required property", id="no-edges"
        ),
        pytest.param(
            {"name": "x", "nodes": [], "edges": []}, "nodes", "should be non-empty", id="no-nodes"
        ),
        pytest.param(
            workflow([trigger(), {"type": "delay", "config": {"ms": 1}}]),
            "nodes[1]",
            "'id' is a required property",
            id="node-without-id",
        ),
    ],
)
def test_a_malformed_document_is_reported(doc: Any, path: str, fragment: str) -> None:
    problem = only_problem(doc)
    assert problem.path == path
    assert fragment in problem.message


# --- One rule at a time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        pytest.param(
            workflow([transform("a", 1)]),
            "nodes",
            "a workflow needs exactly one trigger node, found 0",
            id="no-trigger",
        ),
        pytest.param(
            workflow([trigger(), node("second", "trigger")], "trigger > second"),
            "nodes",
            "a workflow needs exactly one trigger node, found 2",
            id="two-triggers",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1), transform("a", 2)], "trigger > a"),
            "nodes[2].id",
            "node id 'a' is used more than once",
            id="duplicate-id",
        ),
        pytest.param(
            workflow([node("start", "trigger"), transform("trigger", 1)], "start > trigger"),
            "nodes[1].id",
            "the id 'trigger' is reserved for the trigger node",
            id="reserved-trigger-id",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1)], "trigger > a", "a > ghost"),
            "edges[1].target",
            "no node has the id 'ghost'",
            id="edge-to-unknown-node",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1)], "trigger > a", "ghost > a"),
            "edges[1].source",
            "no node has the id 'ghost'",
            id="edge-from-unknown-node",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1)], "trigger > a", "trigger > a"),
            "edges[1]",
            "the edge trigger -> a is listed more than once",
            id="duplicate-edge",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", 1), transform("b", 2), transform("c", 3)],
                "trigger > a > b > a",
                "b > c",
            ),
            "edges",
            # c is not on the cycle but behind it: it could never run either
            "the edges form a cycle through: a, b, c",
            id="cycle",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1)], "trigger > a > a"),
            "edges",
            "the edges form a cycle through: a",
            id="self-loop",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1)], "trigger >true> a"),
            "edges[0].branch",
            "only edges leaving a condition node have a branch",
            id="branch-on-non-condition-edge",
        ),
        pytest.param(
            workflow([trigger(), transform("a", 1), transform("b", 2)], "trigger > a"),
            "nodes[2]",
            "node 'b' cannot be reached from the trigger",
            id="unreachable-node",
        ),
        pytest.param(
            workflow([trigger(), condition("c", "trigger.data.x = 1")], "trigger > c"),
            "nodes[1].config",
            "condition does not parse: unexpected character '=' at column 16 (use '==' to compare)",
            id="condition-does-not-parse",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", {"x": 1}), transform("b", "{{a.output.x}}")],
                "trigger > a",
                "trigger > b",
            ),
            "nodes[2].config",
            "'a.output.x' reads node 'a', which is not upstream of this node",
            id="template-reads-sibling",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", "{{b.output}}"), transform("b", 1)],
                "trigger > a > b",
            ),
            "nodes[1].config",
            "'b.output' reads node 'b', which is not upstream of this node",
            id="template-reads-downstream-node",
        ),
        pytest.param(
            workflow([trigger(), transform("a", "{{a.output}}")], "trigger > a"),
            "nodes[1].config",
            "'a.output' reads node 'a', which is not upstream of this node",
            id="template-reads-itself",
        ),
        pytest.param(
            workflow([trigger(), condition("c", "nobody.output.x == 1")], "trigger > c"),
            "nodes[1].config",
            "'nobody.output.x' reads node 'nobody', which is not upstream of this node",
            id="condition-reads-unknown-node",
        ),
        pytest.param(
            workflow([trigger(), condition("c", "trigger.foo == 1")], "trigger > c"),
            "nodes[1].config",
            "condition: path 'trigger.foo' must read '<nodeId>.output' or 'trigger.data'",
            id="condition-reads-trigger-without-data",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", 1), condition("c", "trigger.data.x or a.result")],
                "trigger > a > c",
            ),
            "nodes[2].config",
            "condition: path 'a.result' must read '<nodeId>.output' or 'trigger.data'",
            id="condition-reads-node-without-output",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", {"x": 1}), condition("c", "a.output.x == 1")],
                "trigger > a",
                "trigger > c",
            ),
            "nodes[2].config",
            "'a.output.x' reads node 'a', which is not upstream of this node",
            id="condition-reads-sibling",
        ),
        pytest.param(
            workflow([trigger(), transform("a", "Hi {{trigger.data.name")], "trigger > a"),
            "nodes[1].config",
            "template '{{trigger.data.name' is not closed with '}}'",
            id="unclosed-template",
        ),
    ],
)
def test_each_rule_gives_one_problem_with_its_path(doc: Doc, path: str, message: str) -> None:
    assert only_problem(doc) == Problem(path, message)


def test_a_branch_may_only_be_true_or_false() -> None:
    doc = workflow(
        [trigger(), condition("c", "trigger.data.x == 1"), transform("a", 1)],
        "trigger > c >true> a",
    )
    doc["edges"][1]["branch"] = "yes"
    problem = only_problem(doc)
    assert problem.path == "edges[1].branch"
    assert "'yes' is not one of ['true', 'false']" in problem.message


@pytest.mark.parametrize("node_id", ["a b", "a.b", "a/b", "", "x" * 65, "{{a}}"], ids=repr)
def test_node_ids_are_letters_digits_dash_and_underscore(node_id: str) -> None:
    doc = workflow([trigger(), transform(node_id, 1)], f"trigger > {node_id}")
    problem = only_problem(doc)
    assert problem.path == "nodes[1].id"
    assert "does not match" in problem.message


@pytest.mark.parametrize("node_id", ["a", "A-1", "node_2", "x" * 64])
def test_well_formed_ids_are_accepted(node_id: str) -> None:
    doc = workflow([trigger(), transform(node_id, 1)])
    doc["edges"] = [{"source": "trigger", "target": node_id}]
    assert validate_workflow(doc) == []


@pytest.mark.parametrize(
    ("bad_node", "path", "fragment"),
    [
        pytest.param(
            node("d", "delay"),
            "nodes[1].config",
            "'ms' is a required property",
            id="delay-without-ms",
        ),
        pytest.param(
            delay("d", -5), "nodes[1].config.ms", "less than the minimum of 0", id="negative-ms"
        ),
        pytest.param(
            delay("d", "soon"), "nodes[1].config.ms", "'soon' does not match", id="delay-ms-text"
        ),
        pytest.param(
            node("d", "delay", {"ms": 1, "seconds": 1}),
            "nodes[1].config",
            "'seconds' was unexpected",
            id="delay-extra-key",
        ),
        pytest.param(
            node("t", "transform"),
            "nodes[1].config",
            "'output' is a required property",
            id="transform-without-output",
        ),
        pytest.param(
            node("f", "fail"),
            "nodes[1].config",
            "'message' is a required property",
            id="fail-without-message",
        ),
        pytest.param(
            fail("f", ""), "nodes[1].config.message", "should be non-empty", id="fail-empty-message"
        ),
        pytest.param(
            node("c", "condition"),
            "nodes[1].config",
            "'condition' is a required property",
            id="condition-without-text",
        ),
        pytest.param(
            node("r", "response"),
            "nodes[1].config",
            "'output' is a required property",
            id="response-without-output",
        ),
        pytest.param(
            node("r", "response", {"output": {}, "status": 700}),
            "nodes[1].config.status",
            "700",
            id="response-bad-status",
        ),
        pytest.param(
            node("x", "teleport"),
            "nodes[1].type",
            "unknown node type 'teleport'"
            " (known: trigger, transform, condition, delay, http, agent, response, fail)",
            id="unknown-type",
        ),
        pytest.param(
            transform("t", 1, timeoutMs=0),
            "nodes[1].timeoutMs",
            "less than the minimum of 1",
            id="timeout-zero",
        ),
        pytest.param(
            transform("t", 1, retry={"maxAttempts": 0}),
            "nodes[1].retry.maxAttempts",
            "less than the minimum of 1",
            id="retry-zero-attempts",
        ),
        pytest.param(
            transform("t", 1, retry={"attempts": 3}),
            "nodes[1].retry",
            "'attempts' was unexpected",
            id="retry-unknown-key",
        ),
        pytest.param(
            transform("t", 1, onError="ignore"),
            "nodes[1].onError",
            "'ignore' is not one of",
            id="on-error-unknown",
        ),
    ],
)
def test_node_settings_must_fit_the_node_type(bad_node: Doc, path: str, fragment: str) -> None:
    doc = workflow([trigger(), bad_node], f"trigger > {bad_node['id']}")
    problem = only_problem(doc)
    assert problem.path == path
    assert fragment in problem.message


def test_trigger_config_is_checked_too() -> None:
    doc = workflow([trigger(mode="cron"), transform("a", 1)], "trigger > a")
    problem = only_problem(doc)
    assert problem.path == "nodes[0].config.mode"
    assert "'cron' is not one of ['manual', 'webhook']" in problem.message


def test_delay_ms_may_be_a_template() -> None:
    doc = workflow([trigger(), delay("d", "{{trigger.data.ms}}")], "trigger > d")
    assert validate_workflow(doc) == []


def test_a_node_fed_only_by_an_unreachable_node_is_unreachable_too() -> None:
    doc = workflow(
        [trigger(), transform("a", 1), transform("island", 2), transform("beyond", 3)],
        "trigger > a",
        "island > beyond",
    )
    assert validate_workflow(doc) == [
        Problem("nodes[2]", "node 'island' cannot be reached from the trigger"),
        Problem("nodes[3]", "node 'beyond' cannot be reached from the trigger"),
    ]


def test_a_template_may_read_any_node_upstream_on_its_path() -> None:
    doc = workflow(
        [
            trigger(),
            transform("a", {"x": 1}),
            transform("b", 2),
            transform("c", ["{{a.output.x}}", "{{b.output}}", "{{trigger.data.y}}"]),
        ],
        "trigger > a > b > c",
    )
    assert validate_workflow(doc) == []


# --- Several problems at once -------------------------------------------------------------------


def test_every_node_and_edge_problem_is_listed_not_just_the_first() -> None:
    doc = workflow(
        [
            trigger(),
            node("second", "trigger"),
            transform("a", 1),
            transform("a", 2),
            node("d", "delay"),
            node("f", "fail"),
            node("x", "teleport"),
        ],
        "trigger > a > d > f > x",
        "trigger >true> second",
        "d > ghost",
    )
    assert paths(validate_workflow(doc)) == [
        "nodes",  # two triggers
        "nodes[3].id",  # a again
        "nodes[4].config",  # delay without ms
        "nodes[5].config",  # fail without message
        "nodes[6].type",  # teleport
        "edges[4].branch",  # branch leaving the trigger
        "edges[5].target",  # ghost
    ]


def test_every_graph_problem_is_listed_not_just_the_first() -> None:
    doc = workflow(
        [
            trigger(),
            transform("a", 1),
            transform("b", 2),
            transform("reads_b", "{{b.output}}"),
            condition("checks_a", "a.output == 1"),
            transform("orphan", 3),
        ],
        "trigger > a > checks_a",
        "trigger > b",
        "a > reads_b",
    )
    assert validate_workflow(doc) == [
        Problem("nodes[3].config", "'b.output' reads node 'b', which is not upstream of this node"),
        Problem("nodes[5]", "node 'orphan' cannot be reached from the trigger"),
    ]
    # checks_a reads a, which is upstream: no problem for nodes[4]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            workflow([trigger(), node("d", "delay"), transform("orphan", 1)], "trigger > d"),
            ["nodes[1].config", "nodes[2]"],
            id="config-problem-hides-unreachable-node",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("a", 1), transform("b", 2), transform("orphan", 3)],
                "trigger > a > b > a",
            ),
            ["edges", "nodes[3]"],
            id="cycle-hides-unreachable-node",
        ),
        pytest.param(
            workflow(
                [trigger(), transform("bad id", 1), node("d", "delay")],
                "trigger > bad id",
                "trigger > d",
            ),
            ["nodes[1].id", "nodes[2].config"],
            id="bad-id-hides-config-problem",
        ),
    ],
)
def test_problems_found_by_different_checks_are_listed_together(
    doc: Doc, expected: list[str]
) -> None:
    assert set(expected) <= set(paths(validate_workflow(doc)))
