"""The errors the engine raises. Each one's message is written for the person reading the run."""

from collections.abc import Mapping
from typing import Any


class NodeError(Exception):
    """A node failed. The message is what its log and the run's error show.

    `retryable`: whether the node's `retry` may try again (not for a blocked address, a bad
    key, an answer that breaks the protocol); `retry_after_s`: the least wait before it does
    (a server's `Retry-After`); `debug`: the debug fields its log shows even so (the requests
    it made).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float = 0.0,
        debug: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.debug: Mapping[str, Any] = debug or {}


class MissingPath(NodeError):
    """A template or condition read a path that has no value."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = path
        detail = f" ({reason})" if reason else ""
        super().__init__(f"missing value at path '{path}'{detail}")


class ConditionError(NodeError):
    """A condition could not be evaluated with the values it read (e.g. `'a' < 1`)."""


class ConditionSyntaxError(ValueError):
    """A condition's text does not parse. Raised when a workflow is validated."""
