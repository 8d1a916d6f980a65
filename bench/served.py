"""`flowtrux serve` as a real process on loopback, for the end-to-end benchmarks: an owner made
with `flowtrux users create`, a logged-in session, and a raw-socket HTTP/1.1 client whose own
cost is negligible beside the server's (it counts events; it parses only what it must)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

EMAIL = "bench@example.com"
PASSWORD = "bench password, not a secret"
RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")
TERMINAL = (b"event: complete\n", b"event: error\n", b"event: cancelled\n")
# No per-user quota in the way of a throughput figure; every other setting is the default.
BENCH_SETTINGS = {"FLOWTRUX_EXECUTE_RATE": "1000000/second"}


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

    def request(self, method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
        """One HTTP/1.1 request as bytes, the owner's cookie included."""
        lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", f"cookie: {self.cookie}"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        if method == "POST":
            lines += ["content-type: application/json", f"content-length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@attrs.define
class StreamRead:
    """What a raw stream reader saw: its events and when the terminal one arrived."""

    events: int = 0
    terminal: bytes = b""
    received_at: list[float] = attrs.field(factory=list)
    ended_at: float = 0.0


async def read_stream(
    served: Served, workflow_id: str, body: bytes = b"{}", *, stamp: bool = False
) -> StreamRead:
    """POST `execute/stream` on a fresh connection and read it to its terminal event, counting
    events (and, with `stamp`, the time each `data:` line was read, for latency figures)."""
    stream = await trio.open_tcp_stream("127.0.0.1", served.port)
    path = f"/api/workflows/{workflow_id}/execute/stream"
    seen = StreamRead()
    async with stream:
        await stream.send_all(served.request("POST", path, body))
        pending = b""
        while not seen.terminal:
            chunk = await stream.receive_some(1 << 16)
            if not chunk:
                raise RuntimeError(f"the stream ended without a terminal event ({seen.events})")
            now = time.perf_counter()
            pending += chunk
            *frames, pending = pending.split(b"\n\n")
            for frame in frames:
                if b"\nevent: " not in frame and not frame.startswith(b"id: "):
                    continue  # headers, a retry hint or a keepalive comment
                seen.events += 1
                if stamp:
                    seen.received_at.append(now)
                if any(name in frame + b"\n" for name in TERMINAL):
                    seen.terminal = frame
        seen.ended_at = time.perf_counter()
    return seen


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
            process.terminate()
            with trio.move_on_after(20):
                await process.wait()
            process.kill()
            await process.wait()


async def _port_of(process: trio.Process, log: Path) -> int:
    """Wait for hypercorn's 'Running on' line in the server's log."""
    with trio.fail_after(30):
        while not (match := RUNNING_ON.search(log.read_bytes())):
            if process.poll() is not None:
                raise RuntimeError(f"flowtrux serve exited:\n{log.read_text(errors='replace')}")
            await trio.sleep(0.05)
    return int(match.group(1))


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024
