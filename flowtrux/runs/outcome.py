"""How a run ended, decided once, in the run's own `finally`."""

from __future__ import annotations

from typing import Any

import attrs

from flowtrux.engine.states import RunStatus

CANCELLED_BY_USER = "Execution cancelled by user"
CANCELLED_BY_SHUTDOWN = "Execution cancelled: the server is shutting down"
INTERRUPTED = "Execution interrupted: the process running it stopped"

TERMINAL_EVENT_NAMES = {
    RunStatus.COMPLETED: "complete",
    RunStatus.FAILED: "error",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.INTERRUPTED: "error",
}


@attrs.frozen
class Outcome:
    status: RunStatus
    output: Any = None
    error: str | None = None

    @classmethod
    def completed(cls, output: Any) -> Outcome:
        return cls(RunStatus.COMPLETED, output=output)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(RunStatus.FAILED, error=error)

    @classmethod
    def cancelled(cls, reason: str) -> Outcome:
        return cls(RunStatus.CANCELLED, error=reason)

    @classmethod
    def interrupted(cls) -> Outcome:
        return cls(RunStatus.INTERRUPTED, error=INTERRUPTED)

    @property
    def event_name(self) -> str:
        return TERMINAL_EVENT_NAMES[self.status]

    @property
    def success(self) -> bool:
        return self.status is RunStatus.COMPLETED

    @property
    def is_cancelled(self) -> bool:
        return self.status is RunStatus.CANCELLED
