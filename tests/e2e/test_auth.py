"""Sessions, roles and the same-origin check, against real hypercorn over HTTP/1.1 and HTTP/2."""

import httpx
import pytest

from flowtrux import passwords
from flowtrux.access import Role
from tests.e2e.conftest import PASSWORD, Server, StartServer, assert_error, logged_in, new_client

SESSION_COOKIE = "flowtrux_session"


def cookie_attributes(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The session cookie's value and its attributes (lower-cased names) from Set-Cookie."""
    headers = [
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith(f"{SESSION_COOKIE}=")
    ]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    first, *rest = (part.strip() for part in headers[0].split(";"))
    value = first.removeprefix(f"{SESSION_COOKIE}=").strip('"')
    attributes = {}
    for part in rest:
        name, _, attribute_value = part.partition("=")
        attributes[name.lower()] = attribute_value
    return value, attributes


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_login_answers_the_user_and_sets_a_session_cookie(
    server: Server, client: httpx.AsyncClient
) -> None:
    await server.member("ada@example.com", Role.EDITOR)
    response = await login(client, "ada@example.com", PASSWORD)

    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["email"] == "ada@example.com"
    assert user["id"].startswith("usr-")
    assert "password" not in response.text.lower()
    value, attributes = cookie_attributes(response)
    assert len(value) >= 32  # a random token, not something guessable
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back

    me = await client.get("/api/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["user"] == user


async def test_the_cookie_is_secure_when_the_public_origin_is_https(
    start_server: StartServer, http_version: str
) -> None:
    server = await start_server(public_origin="https://flows.example.com")
    await server.member("ada@example.com")
    async with new_client(server, http_version) as client:
        response = await login(client, "ada@example.com", PASSWORD)
    assert response.status_code == 200, response.text
    _, attributes = cookie_attributes(response)
    assert "secure" in attributes
    assert "httponly" in attributes


async def test_unknown_email_and_wrong_password_get_the_same_401(
    server: Server, client: httpx.AsyncClient
) -> None:
    await server.member("ada@example.com")
    unknown = await login(client, "nobody@example.com", PASSWORD)
    wrong = await login(client, "ada@example.com", "not the password")

    unknown_body = assert_error(unknown, 401, "invalid_credentials")
    wrong_body = assert_error(wrong, 401, "invalid_credentials")
    assert unknown_body == wrong_body  # nothing tells whether the email exists
    assert "set-cookie" not in unknown.headers
    assert "set-cookie" not in wrong.headers
    assert_error(await client.get("/api/auth/me"), 401, "not_authenticated")


BAD_LOGIN_BODIES: list[tuple[str, bytes]] = [
    ("not JSON", b"email=ada@example.com&password=x"),
    ("a JSON array", b'["ada@example.com", "x"]'),
    ("a JSON string", b'"ada@example.com"'),
    ("null", b"null"),
    ("empty", b""),
    ("no fields", b"{}"),
    ("no password", b'{"email": "ada@example.com"}'),
    ("no email", b'{"password": "x"}'),
    ("a number as email", b'{"email": 42, "password": "x"}'),
    ("a list as password", b'{"email": "ada@example.com", "password": ["x"]}'),
]


async def test_login_with_a_malformed_body_is_400(
    server: Server, client: httpx.AsyncClient
) -> None:
    await server.member("ada@example.com")
    for label, body in BAD_LOGIN_BODIES:
        response = await client.post(
            "/api/auth/login", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (label, response.text)
        assert_error(response, 400, "bad_request")
        assert "set-cookie" not in response.headers, label


EXPECTED_PERMISSIONS = {
    Role.OWNER: {"canView": True, "canEdit": True, "canExecute": True, "canAdmin": True},
    Role.EDITOR: {"canView": True, "canEdit": True, "canExecute": True, "canAdmin": False},
    Role.OPERATOR: {"canView": True, "canEdit": False, "canExecute": True, "canAdmin": False},
    Role.VIEWER: {"canView": True, "canEdit": False, "canExecute": False, "canAdmin": False},
}


async def test_me_lists_each_workspace_with_the_permissions_of_the_role(
    server: Server, client: httpx.AsyncClient
) -> None:
    ids = {
        role: await server.member("ada@example.com", role, workspace=f"{role.value} space")
        for role in Role
    }
    await server.member("grace@example.com", Role.OWNER, workspace="Not Ada's")
    await logged_in(client, "ada@example.com")

    response = await client.get("/api/auth/me")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    workspaces = {space["id"]: space for space in body["workspaces"]}
    assert set(workspaces) == set(ids.values())  # not the workspace she is not a member of
    for role, workspace_id in ids.items():
        space = workspaces[workspace_id]
        assert space["name"] == f"{role.value} space"
        assert space["permissions"] == EXPECTED_PERMISSIONS[role], role


async def test_me_of_a_user_without_workspaces_is_an_empty_list(
    server: Server, client: httpx.AsyncClient
) -> None:
    password_hash = await passwords.hash_password(PASSWORD)
    await server.store.users.create("loner@example.com", "Loner", password_hash)
    await logged_in(client, "loner@example.com")
    response = await client.get("/api/auth/me")
    assert response.status_code == 200, response.text
    assert response.json()["workspaces"] == []


async def test_me_without_a_valid_session_is_401(server: Server, client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/auth/me"), 401, "not_authenticated")
    client.cookies.set(SESSION_COOKIE, "made-up-token")
    assert_error(await client.get("/api/auth/me"), 401, "not_authenticated")


async def test_logout_deletes_the_session_on_the_server(
    server: Server, client: httpx.AsyncClient, http_version: str
) -> None:
    await server.member("ada@example.com")
    token, _ = cookie_attributes(await login(client, "ada@example.com", PASSWORD))

    response = await client.post("/api/auth/logout")

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_error(await client.get("/api/auth/me"), 401, "not_authenticated")
    # Someone who kept the old cookie value (a copy, another tab, a thief) is logged out too.
    async with new_client(server, http_version) as thief:
        thief.cookies.set(SESSION_COOKIE, token)
        assert_error(await thief.get("/api/auth/me"), 401, "not_authenticated")
        assert_error(
            await thief.get("/api/workflows", params={"workspaceId": "ws-x"}),
            401,
            "not_authenticated",
        )


async def test_logout_ends_only_its_own_session(
    server: Server, client: httpx.AsyncClient, http_version: str
) -> None:
    await server.member("ada@example.com")
    async with new_client(server, http_version) as laptop:
        await logged_in(laptop, "ada@example.com")
        await logged_in(client, "ada@example.com")
        assert (await client.post("/api/auth/logout")).status_code == 204
        assert (await laptop.get("/api/auth/me")).status_code == 200


async def test_a_request_from_another_origin_is_refused(
    server: Server, client: httpx.AsyncClient
) -> None:
    await server.member("ada@example.com")
    evil = {"origin": "https://evil.example"}

    response = await client.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}, headers=evil
    )
    body = assert_error(response, 403, "cross_origin")
    assert "https://evil.example" in body["error"]
    assert "set-cookie" not in response.headers  # refused before anything was done

    await logged_in(client, "ada@example.com")
    assert_error(await client.get("/api/auth/me", headers=evil), 403, "cross_origin")
    assert_error(await client.post("/api/auth/logout", headers=evil), 403, "cross_origin")
    assert (await client.get("/api/auth/me")).status_code == 200  # the logout did not happen
    # Same host, other port or scheme: another origin.
    other_port = server.url.rsplit(":", 1)[0] + ":1"
    other_scheme = server.url.replace("http://", "https://")
    for origin in (other_port, other_scheme, "null"):
        response = await client.get("/api/auth/me", headers={"origin": origin})
        assert_error(response, 403, "cross_origin")


async def test_the_servers_own_origin_is_accepted(
    server: Server, client: httpx.AsyncClient
) -> None:
    await server.member("ada@example.com")
    own = {"origin": server.url.rstrip("/")}
    response = await client.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}, headers=own
    )
    assert response.status_code == 200, response.text
    me = await client.get("/api/auth/me", headers=own)
    assert me.status_code == 200, me.text
    assert (await client.post("/api/auth/logout", headers=own)).status_code == 204


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://flows.example.com", 200), ("https://evil.example", 403)],
)
async def test_a_configured_public_origin_is_the_one_accepted(
    start_server: StartServer, http_version: str, origin: str, status: int
) -> None:
    server = await start_server(public_origin="https://flows.example.com/")
    await server.member("ada@example.com")
    async with new_client(server, http_version) as client:
        response = await client.post(
            "/api/auth/login",
            json={"email": "ada@example.com", "password": PASSWORD},
            headers={"origin": origin},
        )
    assert response.status_code == status, response.text
    if status == 403:
        assert_error(response, 403, "cross_origin")
