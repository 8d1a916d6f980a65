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

READY_WRITE_S = 1.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the store answers, is migrated, and takes writes: this process's lease is
    renewed within READY_WRITE_S (the journal may have had nothing to write for a while), unless
    a write is under way here (a large commit takes seconds), whose outcome then tells."""
    found = services(request)
    ready = False
    try:
        if found.runs.journal.store_available and await found.store.ready():
            ready = await found.store.processes.renews(found.runs.process_id, READY_WRITE_S)
    except StoreUnavailable:
        pass  # the store says why in its own log lines
    except Exception:
        logger.warning("readiness check failed", exc_info=True)
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
