"""Liveness and readiness probes, and the metrics."""

import logging

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowtrux import metrics
from flowtrux.errors import StoreUnavailable
from flowtrux.http.json_response import JSONResponse
from flowtrux.http.services import services

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    found = services(request)
    try:
        ready = found.runs.journal.store_available and await found.store.ready()
    except Exception:
        logger.warning("readiness check failed", exc_info=True)
        ready = False
    if not ready:
        return JSONResponse(
            {
                "status": "unavailable",
                "error": "The store is unreachable, cannot take writes, or is not migrated.",
            },
            status_code=503,
            headers={"Retry-After": str(StoreUnavailable.retry_after_s)},
        )
    return JSONResponse({"status": "ready"})


async def metrics_text(request: Request) -> Response:
    """Prometheus' text format, for every worker of this server."""
    body, content_type = await trio.to_thread.run_sync(metrics.exposition)
    return Response(body, media_type=content_type)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_text, methods=["GET"]),
]
