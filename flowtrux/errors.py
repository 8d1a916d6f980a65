"""Errors a caller can fix. They are raised where they are found; `http/errors.py` turns each
into a status code and a JSON body."""

from collections.abc import Sequence

from flowtrux.engine.validation import Problem


class FlowtruxError(Exception):
    """The message is a sentence that tells the caller what to fix."""


class NotAuthenticated(FlowtruxError):
    def __init__(self) -> None:
        super().__init__("Log in first: this call needs a session (POST /api/auth/login).")


class InvalidCredentials(FlowtruxError):
    def __init__(self) -> None:
        super().__init__("The email or the password is wrong.")


class WrongWebhookToken(FlowtruxError):
    def __init__(self) -> None:
        super().__init__(
            "Send the workflow's webhook token as 'Authorization: Bearer <token>'"
            " (POST /api/workflows/{id}/webhook-token makes a new one)."
        )


class PermissionDenied(FlowtruxError):
    def __init__(self, action: str) -> None:
        super().__init__(f"Your role in this workspace does not allow you to {action}.")


class NotFound(FlowtruxError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"There is no {kind} '{ident}' that you can see.")


class BadRequest(FlowtruxError):
    pass


class PayloadTooLarge(FlowtruxError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class InvalidWorkflow(FlowtruxError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"The workflow has {count} problem{'s' if count != 1 else ''}: see 'problems'."
        )


class TooManyRequests(FlowtruxError):
    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ShuttingDown(FlowtruxError):
    retry_after_s = 5  # another process, or this one restarted, may take it by then

    def __init__(self) -> None:
        super().__init__("The server is shutting down and starts no new runs; try again shortly.")


class StoreUnavailable(FlowtruxError):
    """The database cannot answer now (locked by another connection, unreachable, full); the
    same call may succeed later. Nothing was written."""

    retry_after_s = 5

    def __init__(self, cause: str, *, full: bool = False) -> None:
        self.cause = cause
        self.full = full  # out of space: what it cannot take now it may never take
        super().__init__(
            "The store cannot answer right now; nothing was changed. Try again in a few seconds."
        )


class Conflict(FlowtruxError):
    pass


class ServerBusy(FlowtruxError):
    """Too much of one costly kind of work is queued already (password hashing)."""

    retry_after_s = 1


class EndNotStored(FlowtruxError):
    """A run ended while its end could not be stored, and the server stopped waiting for the
    store (shutdown): a later process ends it INTERRUPTED."""

    retry_after_s = 5

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"Execution '{execution_id}' ended, but the server stopped before its end was"
            f" stored; GET /api/executions/{execution_id} shows its status once it is."
        )
