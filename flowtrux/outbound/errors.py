"""What can go wrong when a workflow reaches out. Each message is written for the person reading
the run, and never holds a secret (URLs in messages are redacted)."""


class OutboundError(Exception):
    """A request failed. `retryable` says whether another attempt could go otherwise."""

    retryable: bool = True


class Blocked(OutboundError):
    """The request would reach an address the guard refuses. Never retried."""

    retryable = False


class Refused(OutboundError):
    """The request or its answer breaks a rule (a URL that does not parse, too many redirects, a
    response over its size limit). Another attempt would break it again."""

    retryable = False
