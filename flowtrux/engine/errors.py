"""The errors the engine raises. Each one's message is written for the person reading the run."""


class NodeError(Exception):
    """A node failed. The message is what its log and the run's error show."""


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
