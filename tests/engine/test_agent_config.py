"""Validation of the `agent` node's config: its tools' requests may read the model's `args`,
nothing else may; `parameters` must be a JSON Schema; `apiKeyEnv` names only an API key."""

from typing import Any

import pytest

from flowtrux.engine.validation import validate_workflow
from tests.engine.builders import node, transform, trigger, workflow


def agent_doc(**config: Any) -> Any:
    tool = {
        "name": "lookup",
        "description": "The weather in {{trigger.data.region}}",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "http": {"url": "https://api.example.com/w?city={{args.city}}&u={{shape.output.u}}"},
    }
    settings = {"model": "m", "prompt": "Weather?", "tools": [tool], **config}
    return workflow(
        [trigger(), transform("shape", {"u": "metric"}), node("ask", "agent", settings)],
        "trigger > shape > ask",
    )


def messages(doc: Any) -> list[str]:
    return [problem.message for problem in validate_workflow(doc)]


def test_a_tool_request_reads_args_and_the_nodes_upstream() -> None:
    assert messages(agent_doc()) == []


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ({"prompt": "Weather in {{args.city}}?"}, "path 'args.city' must read"),
        (
            {"tools": [{"name": "t", "description": "{{later.output}}", "http": {"url": "x"}}]},
            "reads node 'later', which is not upstream",
        ),
        (
            {"tools": [{"name": "t", "parameters": {"type": "bogus"}, "http": {"url": "x"}}]},
            "tools[0].parameters is not a valid JSON Schema",
        ),
        (
            {"tools": [{"name": "t", "http": {"url": "x"}}, {"name": "t", "http": {"url": "y"}}]},
            "the name 't' is used more than once",
        ),
        ({"apiKeyEnv": "DATABASE_URL"}, "does not match"),
        ({"maxIterations": 0}, "less than the minimum of 1"),
    ],
)
def test_a_mistake_in_the_config_is_named(config: dict[str, Any], said: str) -> None:
    assert any(said in message for message in messages(agent_doc(**config))), messages(
        agent_doc(**config)
    )
