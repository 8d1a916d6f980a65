"""What the routes share, built once in the lifespan and reached through the request."""

import attrs
from starlette.requests import Request

from flowtrux.config import Settings
from flowtrux.http.rate_limit import RateLimiter, SharedRateLimiter
from flowtrux.runs.manager import RunManager
from flowtrux.store.store import Store


@attrs.frozen
class Services:
    settings: Settings
    store: Store
    runs: RunManager
    execute_quota: RateLimiter  # per user
    webhook_quota: SharedRateLimiter  # per workflow, counted by every process


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
