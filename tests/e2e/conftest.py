"""End-to-end fixtures: the real app under real hypercorn on 127.0.0.1:0, and real clients."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import argon2
import attrs
import httpx
import pytest
import trio
from starlette.applications import Starlette

from flowtrux import passwords
from flowtrux.access import Role
from flowtrux.config import Settings
from flowtrux.http.app import create_app
from flowtrux.http.serve import hypercorn_config, serve
from flowtrux.passwords import hash_password
from flowtrux.store.store import Store, sqlite_path
from tests.outside.fake_llm import llm
from tests.outside.target import target

PASSWORD = "correct horse battery staple"
__all__ = ["llm", "target"]  # the servers outside FlowTrux, for tests of nodes that reach out


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its production cost takes ~0.4 s a hash on a small CI machine and every member
    and login costs one; these tests are about HTTP, not about argon2's cost."""
    monkeypatch.setattr(passwords, "_hasher", argon2.PasswordHasher(1, 1024, 1))


@attrs.define
class Server:
    url: str
    app: Starlette

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    @property
    def database(self) -> Path:
        """The server's SQLite file."""
        return sqlite_path(self.store.url)

    async def member(self, email: str, role: Role = Role.OWNER, workspace: str = "Acme") -> str:
        """Create a user (if new) with `role` in `workspace`; return the workspace id."""
        found = await self.store.users.find_by_email(email)
        if found is None:
            user = await self.store.users.create(email, email, await hash_password(PASSWORD))
        else:
            user = found[0]
        space = await self.store.workspaces.ensure(workspace)
        await self.store.workspaces.set_role(space.id, user.id, role)
        return space.id


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[StartServer]:
    stops: list[trio.Event] = []

    async def start(config_file: Path | None = None, **settings: Any) -> Server:
        database = f"sqlite:///{tmp_path}/flowtrux-{len(stops)}.db"
        app_settings = Settings(
            **{"database_url": database, "execute_rate": "600/minute", **settings}
        )
        app = create_app(app_settings)
        stop = trio.Event()
        config = hypercorn_config(config_file, "127.0.0.1:0", app_settings)
        urls = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        stops.append(stop)
        return Server(urls[0], app)

    yield start
    for stop in stops:
        stop.set()


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def http_version(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


def new_client(server: Server, http_version: str) -> httpx.AsyncClient:
    http2 = http_version == "HTTP/2"  # over plain TCP: h2c with prior knowledge
    return httpx.AsyncClient(base_url=server.url, http1=not http2, http2=http2, timeout=10)


async def logged_in(client: httpx.AsyncClient, email: str) -> httpx.AsyncClient:
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


@pytest.fixture
async def client(server: Server, http_version: str) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(server, http_version) as client:
        yield client


@pytest.fixture
async def owner(server: Server, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client logged in as the owner of workspace Acme."""
    await server.member("owner@example.com")
    return await logged_in(client, "owner@example.com")


@pytest.fixture
async def workspace_id(server: Server, owner: httpx.AsyncClient) -> str:
    return await server.member("owner@example.com")


CreateWorkflow = Callable[[dict[str, Any]], Awaitable[str]]


@pytest.fixture
def create_workflow(owner: httpx.AsyncClient, workspace_id: str) -> CreateWorkflow:
    async def create(doc: dict[str, Any]) -> str:
        response = await owner.post("/api/workflows", json={"workspaceId": workspace_id, **doc})
        assert response.status_code == 201, response.text
        workflow_id: str = response.json()["workflow"]["id"]
        return workflow_id

    return create


async def wait_until_finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    """Poll the history until the execution has left RUNNING."""
    with trio.fail_after(10):
        while True:
            response = await client.get(f"/api/executions/{execution_id}")
            execution: dict[str, Any] = response.json()["execution"]
            if execution["status"] != "RUNNING":
                return execution
            await trio.sleep(0.01)


OwnerConnection = Callable[[], httpx.AsyncClient]


@pytest.fixture
def owner_connection(
    server: Server, http_version: str, owner: httpx.AsyncClient
) -> OwnerConnection:
    """New clients with the owner's session, each with connections of its own to close."""

    def connect() -> httpx.AsyncClient:
        client = new_client(server, http_version)
        client.cookies = owner.cookies
        return client

    return connect


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A plain JSON error of api.md, `{"error": <sentence>, "code": <code>}`: never a stream,
    never a stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    assert "Traceback" not in response.text
    return body


def utc(timestamp: Any) -> datetime:
    """An ISO-8601 UTC timestamp as api.md writes them: `2026-11-28T13:45:00.123Z`."""
    assert isinstance(timestamp, str), timestamp
    assert timestamp.endswith("Z"), timestamp
    moment = datetime.fromisoformat(timestamp)
    assert moment.utcoffset() == timedelta(0), timestamp
    return moment
