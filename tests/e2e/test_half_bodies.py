"""Clients that leave in the middle of their request body, over a raw socket against
`flowtrux serve`: the server logs no error and no traceback (anyone could flood the error log
otherwise: Starlette's `ClientDisconnect` used to surface as an unhandled error, logged twice),
starts no run, and goes on serving. What prevents it is the app's inbox
(flowtrux/http/hypercorn_fixes/app_inbox.py): a handler whose client left is cancelled, so it
never reads a disconnect as the end of its body."""

import sqlite3
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.processes import create_workflow, flowtrux, running, server_env
from tests.support import chain, delay, trigger


@pytest.fixture
async def env(tmp_path: Path) -> dict[str, str]:
    return await server_env(tmp_path, log_level="debug")  # whatever it says of them is seen


async def leave_mid_body(url: httpx.URL, path: str, cookie: str = "") -> None:
    """POST `path` announcing 1,000 bytes of JSON, send 500, and close the connection."""
    stream = await trio.open_tcp_stream(url.host, url.port or 80)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n"
        f"{f'Cookie: {cookie}' + chr(13) + chr(10) if cookie else ''}\r\n"
    )
    await stream.send_all(head.encode() + b'{"pad": "' + b"x" * 491)
    await trio.sleep(0.5)  # the handler is reading the body by now
    await stream.aclose()


async def until_logged(output: bytearray, start: int, lines: list[bytes]) -> None:
    """Wait until the server has logged each of `lines` after `start` (hypercorn's access log
    notes each request once it is over)."""
    with trio.fail_after(10):
        while not all(line in output[start:] for line in lines):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_a_client_that_leaves_mid_body_logs_no_error_and_starts_no_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    async with (
        running(flowtrux("serve", "--port", "0"), env, tmp_path) as (_, url, output),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        workflow_id = await create_workflow(client, chain(trigger(), delay("wait", 10)))
        cookie = f"flowtrux_session={client.cookies['flowtrux_session']}"
        logged_before = len(output)
        server = httpx.URL(url)
        paths = [
            "/api/auth/login",  # anyone can do this one
            f"/api/workflows/{workflow_id}/execute",
            f"/api/workflows/{workflow_id}/execute/stream",
            "/api/workflows",
        ]
        for path in paths:
            await leave_mid_body(server, path, cookie)
        await until_logged(output, logged_before, [f'"POST {p} 1.1'.encode() for p in paths])
        health = await client.get("/healthz")

    logged = output[logged_before:].decode()
    assert "Traceback" not in logged, logged
    assert "ClientDisconnect" not in logged, logged
    assert '"level": "ERROR"' not in logged, logged
    assert health.status_code == 200
    with sqlite3.connect(tmp_path / "x.db") as db:
        assert db.execute("SELECT COUNT(*) FROM executions").fetchone() == (0,)
