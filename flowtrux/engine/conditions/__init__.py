"""Conditions: small boolean expressions over a run's scope, parsed and evaluated without `eval`.

    trigger.data.priority >= 3 and not (agent-1.output.status in trigger.data.finished)

Operands are literals (`'text'`, `"text"`, `12`, `-2.5`, `true`, `false`, `null`), paths
(`trigger.data.x`, `node-id.output.items.0`) or a parenthesised expression. Comparisons are
`== != < <= > >= in` and `not in`; they do not chain. `not`, `and`, `or` bind in that order, use
the truthiness of JSON values and yield booleans. There is no arithmetic, so `-` inside a word
belongs to the word.
"""

from flowtrux.engine.conditions.evaluate import Evaluation, evaluate
from flowtrux.engine.conditions.parse import parse_condition
from flowtrux.engine.conditions.tree import Condition

__all__ = ["Condition", "Evaluation", "evaluate", "parse_condition"]
