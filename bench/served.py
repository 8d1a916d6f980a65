"""`flowtrux serve` as a real process on loopback, for the end-to-end benchmarks: an owner made
with `flowtrux users create`, a logged-in session, and the requests that run a workflow, as
bytes for the raw-socket clients (`bench.sse`, `bench.load`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from bench import procs, rawhttp

EMAIL = "bench@example.com"
PASSWORD = "bench password, not a secret"
RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")
# No per-user quota in the way of a throughput figure, and room for the 1,000 runs at once of
# the memory figure; every other setting is the default.
BENCH_SETTINGS = {
    "FLOWTRUX_EXECUTE_RATE": "1000000/second",
    "FLOWTRUX_MAX_RUNS_PER_WORKSPACE": "2000",
}


def flowtrux(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowtrux", *args]


@attrs.frozen
class Served:
    """A running `flowtrux serve` and the owner's session on it."""

    process: trio.Process
    port: int
    cookie: str
    workspace_id: str
    database: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **options: Any) -> httpx.AsyncClient:
        """An httpx client logged in as the owner."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"cookie": self.cookie}, timeout=120, **options
        )

    async def create_workflow(self, name: str, nodes: list[Any], edges: list[Any]) -> str:
        doc = {"workspaceId": self.workspace_id, "name": name, "nodes": nodes, "edges": edges}
        async with self.client() as client:
            created = await client.post("/api/workflows", json=doc)
        created.raise_for_status()
        workflow_id: str = created.json()["workflow"]["id"]
        return workflow_id

    def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        """One HTTP/1.1 request as bytes, the owner's cookie included."""
        return rawhttp.request(method, path, body, {"cookie": self.cookie})

    def execute(self, workflow_id: str, body: bytes = b"{}", *, stream: bool = True) -> bytes:
        """The request that runs a workflow: its stream, or (`stream` False) its JSON answer."""
        path = f"/api/workflows/{workflow_id}/execute{'/stream' if stream else ''}"
        return self.request("POST", path, body)


async def _log_in(port: int) -> tuple[str, str]:
    """The owner's session cookie and workspace id."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        login = await client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
        login.raise_for_status()
        me = (await client.get("/api/auth/me")).json()
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    return cookie, me["workspaces"][0]["id"]


@asynccontextmanager
async def served(
    *, workers: int = 1, settings: Mapping[str, str] | None = None
) -> AsyncIterator[Served]:
    """`flowtrux serve` on 127.0.0.1 (a free port) and a new SQLite file, logged in."""
    with tempfile.TemporaryDirectory(prefix="flowtrux-bench-") as folder:
        database = Path(folder) / "bench.db"
        env = {
            **os.environ,
            "FLOWTRUX_DATABASE_URL": f"sqlite:///{database}",
            **BENCH_SETTINGS,
            **(settings or {}),
        }
        create = ["users", "create", "--email", EMAIL, "--password", PASSWORD]
        await trio.run_process(
            flowtrux(*create, "--workspace", "Bench", "--role", "owner"),
            env=env,
            cwd=folder,
            capture_stdout=True,
        )
        command = flowtrux("serve", "--port", "0", "--workers", str(workers))
        log = Path(folder) / "serve.log"
        with log.open("wb") as output:
            process = await trio.lowlevel.open_process(
                command, env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            port = await _port_of(process, log)
            cookie, workspace_id = await _log_in(port)
            yield Served(process, port, cookie, workspace_id, database)
        finally:
            await procs.stop(process, grace_s=20)


async def _port_of(process: trio.Process, log: Path) -> int:
    """Wait for hypercorn's 'Running on' line in the server's log."""
    with trio.fail_after(30):
        while not (match := RUNNING_ON.search(await trio.Path(log).read_bytes())):
            if process.poll() is not None:
                output = await trio.Path(log).read_text(errors="replace")
                raise RuntimeError(f"flowtrux serve exited:\n{output}")
            await trio.sleep(0.05)
    return int(match.group(1))
