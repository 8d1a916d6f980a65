"""What a workflow may hold at most (workflow.md, "Limits"): each limit a 422 naming it."""

from typing import Final

MAX_WORKFLOW_NODES: Final = 5_000
"""The default of `FLOWTRUX_MAX_WORKFLOW_NODES`."""

MAX_CONDITION_BYTES: Final = 4_096
"""A condition's text, encoded as UTF-8."""

MAX_MS: Final = 86_400_000
"""A day, the most a delay's `ms` or a node's `timeoutMs` may be: a run times out long before."""
