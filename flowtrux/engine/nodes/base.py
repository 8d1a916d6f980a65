"""What every node type provides, and what a node gets to run with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
from jsonschema import Draft202012Validator

from flowtrux.engine import templates
from flowtrux.engine.errors import NodeError
from flowtrux.engine.graph import Node
from flowtrux.engine.sizes import Sizes
from flowtrux.outbound.client import Exchange, Outbound


@attrs.frozen
class NodeResult:
    output: Any
    debug: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class NodeContext:
    """A node's view of its run: its own definition, its inputs and the values templates read."""

    node: Node
    inputs: Mapping[str, Any]  # {predecessorId: output}; the trigger's is {body, staticData}
    scope: Mapping[str, Any]  # {"trigger": {"data": …}, nodeId: {"output": …}}
    sizes: Sizes  # of the run's values, against what a node may output
    outbound: Outbound | None = None  # the app's HTTP clients; a run without them sends nothing
    emit_delta: Callable[[str], None] = lambda delta: None  # a piece of output, as it comes
    exchange: Exchange = attrs.field(factory=Exchange)  # what the node sent: secrets, requests

    @property
    def config(self) -> Mapping[str, Any]:
        return self.node.config

    def client(self) -> Outbound:
        """The app's HTTP clients. Raises NodeError when the run was given none."""
        if self.outbound is None:
            raise NodeError("this run cannot send HTTP requests: it was started without a client")
        return self.outbound

    def render(self, value: Any) -> Any:
        """Fill the templates in `value`. Raises MissingPath naming a path that has no value,
        OutputTooLarge once what it builds is larger than the node may output."""
        return templates.render(value, self.scope, self.sizes.budget())

    def render_with(self, value: Any, values: Mapping[str, Any]) -> Any:
        """`render`, with `values` readable too (an agent tool's `args`)."""
        return templates.render(value, {**self.scope, **values}, self.sizes.budget())


def paths_in_templates(config: Mapping[str, Any]) -> Iterable[str]:
    return templates.template_paths(config)


def template_syntax_problems(config: Mapping[str, Any]) -> Iterable[str]:
    return templates.template_problems(config)


@attrs.frozen
class NodeType:
    """One kind of node: its config's JSON Schema (and a validator for it, made once) and the
    coroutine that runs it.

    `paths` lists what the config reads (so validation can check it reads only upstream nodes);
    `problems` finds config mistakes a schema cannot express. Both default to template checks.
    """

    name: str
    config_schema: Mapping[str, Any]
    run: Callable[[NodeContext], Awaitable[NodeResult]]
    paths: Callable[[Mapping[str, Any]], Iterable[str]] = paths_in_templates
    problems: Callable[[Mapping[str, Any]], Iterable[str]] = template_syntax_problems
    config_validator: Draft202012Validator = attrs.field(init=False, eq=False, repr=False)

    @config_validator.default
    def _config_validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.config_schema)
