"""Login, logout and who am I."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowtrux.errors import BadRequest, InvalidCredentials
from flowtrux.http.access import SESSION_COOKIE, current_user
from flowtrux.http.body import json_object
from flowtrux.http.json_response import JSONResponse
from flowtrux.http.services import services
from flowtrux.http.views import membership_view, user_view
from flowtrux.passwords import hash_password, needs_rehash, verify_password
from flowtrux.store.sessions import SESSION_LIFETIME


async def login(request: Request) -> Response:
    body = await json_object(request)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise BadRequest('Send {"email": …, "password": …} as strings.')
    store = services(request).store
    found = await store.users.find_by_email(email)
    user, password_hash = found if found else (None, None)
    matches = await verify_password(password_hash, password)  # a decoy for an unknown email
    if user is None or not matches:
        raise InvalidCredentials()
    if password_hash and needs_rehash(password_hash):
        await store.users.set_password(user.id, await hash_password(password))
    token = await store.sessions.create(user.id)
    response = JSONResponse({"user": user_view(user)})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_served_over_https(request),
    )
    return response


async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await services(request).store.sessions.delete(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


async def me(request: Request) -> Response:
    user = await current_user(request)
    memberships = await services(request).store.workspaces.memberships(user.id)
    return JSONResponse(
        {"user": user_view(user), "workspaces": [membership_view(m) for m in memberships]}
    )


def _served_over_https(request: Request) -> bool:
    public_origin = services(request).settings.public_origin
    return request.url.scheme == "https" or bool(
        public_origin and public_origin.startswith("https:")
    )


routes = [
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
    Route("/api/auth/me", me, methods=["GET"]),
]
