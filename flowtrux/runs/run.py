"""One run: its cancel scope, why it was cancelled, and when it has ended."""

import attrs
import trio

from flowtrux.engine.graph import Graph
from flowtrux.engine.states import RunStatus
from flowtrux.store.workflows import Workflow


@attrs.define(eq=False)
class Run:
    execution_id: str
    workflow: Workflow
    graph: Graph
    body: dict[str, object]
    starting: trio.CancelScope = attrs.field(factory=trio.CancelScope)  # writing its row
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)  # running it
    cancel_reason: str | None = None
    failure: str | None = None  # set when the run cannot go on: it ends FAILED with this
    background: bool = False
    status: RunStatus = RunStatus.RUNNING
    ending: trio.CancelScope | None = None  # the shielded wait for its end to be stored
    stop_pressed_at: float | None = None  # when a Stop reached this process (trio's clock)
    finished: trio.Event = attrs.field(factory=trio.Event)

    @property
    def continue_on_disconnect(self) -> bool:
        return bool(self.graph.trigger.config.get("continueOnDisconnect", False))

    def cancel(self, reason: str) -> None:
        """Stop the run at its next checkpoint; the first reason given is the one reported."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.starting.cancel()
        self.cancel_scope.cancel()

    def fail(self, reason: str) -> None:
        """Stop the run at its next checkpoint; it ends FAILED with `reason`, whatever else
        happened."""
        self.failure = reason
        self.cancel_scope.cancel()
