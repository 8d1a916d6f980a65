"""The node types a workflow can use, by name."""

from collections.abc import Mapping

from flowtrux.engine.nodes.agent import AGENT
from flowtrux.engine.nodes.base import NodeContext, NodeResult, NodeType
from flowtrux.engine.nodes.condition import CONDITION
from flowtrux.engine.nodes.delay import DELAY
from flowtrux.engine.nodes.fail import FAIL
from flowtrux.engine.nodes.http import HTTP
from flowtrux.engine.nodes.response import RESPONSE
from flowtrux.engine.nodes.transform import TRANSFORM
from flowtrux.engine.nodes.trigger import TRIGGER

NODE_TYPES: Mapping[str, NodeType] = {
    node_type.name: node_type
    for node_type in (TRIGGER, TRANSFORM, CONDITION, DELAY, HTTP, AGENT, RESPONSE, FAIL)
}

__all__ = ["NODE_TYPES", "NodeContext", "NodeResult", "NodeType"]
