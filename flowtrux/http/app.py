"""The ASGI application: routes, error handlers, and the lifespan that owns the store and runs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from flowtrux.config import Settings
from flowtrux.engine.scheduler import Limits
from flowtrux.http.errors import EXCEPTION_HANDLERS
from flowtrux.http.origin import SameOriginMiddleware
from flowtrux.http.rate_limit import RateLimiter, SharedRateLimiter
from flowtrux.http.routes import auth, execute, executions, service, webhooks, workflows
from flowtrux.http.services import Services
from flowtrux.outbound.client import open_outbound
from flowtrux.outbound.networks import AddressPolicy
from flowtrux.runs.manager import RunSettings, open_run_manager
from flowtrux.store.store import open_store


def run_settings(settings: Settings) -> RunSettings:
    return RunSettings(
        limits=Limits(
            settings.run_timeout_s,
            settings.max_concurrent_nodes,
            settings.max_output_bytes,
            settings.max_run_log_bytes,
        ),
        max_runs_per_workspace=settings.max_runs_per_workspace,
        lease_s=settings.lease_s,
        retention_days=settings.retention_days,
        callback_secret=settings.callback_secret,
    )


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_store(settings.database_url) as store,
            open_outbound(
                AddressPolicy.parse(settings.http_allow_cidrs),
                settings.llm_base_url,
                settings.max_outbound_per_workspace,
            ) as outbound,
            open_run_manager(store, run_settings(settings), outbound) as runs,
        ):
            quota = RateLimiter.parse(settings.execute_rate)
            webhooks = SharedRateLimiter.parse(
                settings.webhook_rate,
                store.workflows.count_webhook_call,
                "This workflow's webhook has had its quota of calls",
            )
            app.state.services = Services(settings, store, runs, quota, webhooks)
            yield

    return Starlette(
        routes=[
            *auth.routes,
            *workflows.routes,
            *execute.routes,
            *webhooks.routes,
            *executions.routes,
            *service.routes,
        ],
        middleware=[Middleware(SameOriginMiddleware, public_origin=settings.public_origin)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
