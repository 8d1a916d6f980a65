"""Errors become JSON here, in one place: `{"error": <sentence>, "code": <machine code>}`."""

import logging

import attrs
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from flowtrux import errors
from flowtrux.http.json_response import JSONResponse

logger = logging.getLogger(__name__)

STATUS_AND_CODE: dict[type[errors.FlowtruxError], tuple[int, str]] = {
    errors.BadRequest: (400, "bad_request"),
    errors.NotAuthenticated: (401, "not_authenticated"),
    errors.InvalidCredentials: (401, "invalid_credentials"),
    errors.WrongWebhookToken: (401, "invalid_webhook_token"),
    errors.PermissionDenied: (403, "forbidden"),
    errors.NotFound: (404, "not_found"),
    errors.Conflict: (409, "conflict"),
    errors.PayloadTooLarge: (413, "payload_too_large"),
    errors.InvalidWorkflow: (422, "invalid_workflow"),
    errors.TooManyRequests: (429, "too_many_requests"),
    errors.ShuttingDown: (503, "shutting_down"),
    errors.StoreUnavailable: (503, "store_unavailable"),
    errors.EndNotStored: (503, "end_not_stored"),
    errors.ServerBusy: (503, "busy"),
}

RETRY_LATER = (
    errors.TooManyRequests,
    errors.ShuttingDown,
    errors.StoreUnavailable,
    errors.EndNotStored,
    errors.ServerBusy,
)

HTTP_MESSAGES = {
    404: ("There is no such endpoint; check the path against the API in the README.", "no_route"),
    405: ("This endpoint does not accept this method.", "method_not_allowed"),
}


def error_response(status: int, message: str, code: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status)


async def flowtrux_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.FlowtruxError)
    status, code = next(
        STATUS_AND_CODE[kind] for kind in type(exc).__mro__ if kind in STATUS_AND_CODE
    )
    extra = {}
    if isinstance(exc, errors.InvalidWorkflow):
        extra["problems"] = [attrs.asdict(problem) for problem in exc.problems]
    response = error_response(status, str(exc), code, **extra)
    if isinstance(exc, RETRY_LATER):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, errors.WrongWebhookToken):
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.StoreUnavailable):
        logger.warning("answered 503 to %s %s: %s", request.method, request.url.path, exc.cause)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message, code = HTTP_MESSAGES.get(exc.status_code, (str(exc.detail), "http_error"))
    response = error_response(exc.status_code, message, code)
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


async def client_left(request: Request, exc: Exception) -> Response:
    """The client left while its body was read: nothing to log as an error, no one to answer.
    (Under `flowtrux serve` the app's inbox cancels such a handler first; this is for a server
    that does not.)"""
    logger.debug("%s %s: the client left before its whole body", request.method, request.url.path)
    return Response(status_code=400)


async def server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "FlowTrux hit an unexpected error; it has been logged.", "internal")


EXCEPTION_HANDLERS = {
    errors.FlowtruxError: flowtrux_error,
    HTTPException: http_error,
    ClientDisconnect: client_left,
    Exception: server_error,
}
