"""CSRF defence: a request whose Origin header names another origin than ours is refused, unless
it is authenticated by what it carries itself (a webhook's bearer token), not by a cookie."""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from flowtrux.http.errors import error_response

TOKEN_ONLY_PATHS = ("/api/webhooks/",)  # no session cookie counts there: nothing to forge


class SameOriginMiddleware:
    def __init__(self, app: ASGIApp, public_origin: str | None) -> None:
        self.app = app
        self.public_origin = public_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(TOKEN_ONLY_PATHS):
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and origin != self._own_origin(scope, headers):
                response = error_response(
                    403,
                    f"Requests from {origin} are refused: call this API from its own origin.",
                    "cross_origin",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _own_origin(self, scope: Scope, headers: Headers) -> str:
        if self.public_origin:
            return self.public_origin.rstrip("/")
        return f"{scope['scheme']}://{headers.get('host', '')}"
