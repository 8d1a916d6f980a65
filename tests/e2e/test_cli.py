"""The `flowtrux` command as a real process: users create, serve (and its graceful shutdown),
and the demo with the very curl lines it prints."""

import json
import os
import re
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from tests.e2e.processes import create_owner, flowtrux, running
from tests.support import chain, delay, trigger


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FLOWTRUX_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}


async def test_users_create_adds_a_user_and_then_a_membership(
    env: dict[str, str], tmp_path: Path
) -> None:
    common = ["--email", "Ada@Example.com", "--password", "s3cret-pass"]
    first = await trio.run_process(
        flowtrux("users", "create", *common, "--workspace", "Ops", "--role", "owner"),
        env=env, cwd=tmp_path, capture_stdout=True,
    )  # fmt: skip
    assert first.stdout.startswith(b"created ada@example.com")
    second = await trio.run_process(
        flowtrux("users", "create", *common, "--workspace", "Sales", "--role", "viewer"),
        env=env, cwd=tmp_path, capture_stdout=True,
    )  # fmt: skip
    assert second.stdout.startswith(b"found ada@example.com")
    with sqlite3.connect(tmp_path / "cli.db") as db:
        roles = db.execute(
            "SELECT workspaces.name, role FROM memberships JOIN workspaces"
            " ON workspaces.id = workspace_id ORDER BY workspaces.name"
        ).fetchall()
    assert roles == [("Ops", "owner"), ("Sales", "viewer")]


async def test_sigterm_ends_open_streams_with_their_cancelled_event(
    env: dict[str, str], tmp_path: Path
) -> None:
    await create_owner(env, tmp_path, "op@example.com", "pw-pw-pw")
    async with (
        running(flowtrux("serve", "--port", "0"), env, tmp_path) as (process, url, output),
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        await client.post(
            "/api/auth/login", json={"email": "op@example.com", "password": "pw-pw-pw"}
        )
        me = (await client.get("/api/auth/me")).json()
        doc = {"workspaceId": me["workspaces"][0]["id"], **chain(trigger(), delay("wait", 60_000))}
        workflow_id = (await client.post("/api/workflows", json=doc)).json()["workflow"]["id"]
        names = []
        path = f"/api/workflows/{workflow_id}/execute/stream"
        async with aconnect_sse(client, "POST", path, json={}) as source:
            async for event in source.aiter_sse():
                names.append(event.event)
                if event.json().get("nodeId") == "wait" and event.event == "node_start":
                    process.send_signal(signal.SIGTERM)
                last = event
        with trio.fail_after(10):
            assert await process.wait() == 0, output.decode()
    assert names[-2:] == ["node_complete", "cancelled"]
    assert last.json()["error"] == "Execution cancelled: the server is shutting down"
    with sqlite3.connect(tmp_path / "cli.db") as db:
        statuses = db.execute("SELECT status FROM executions").fetchall()
    assert statuses == [("CANCELLED",)]


async def test_the_demo_serves_and_its_curl_lines_stream_a_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    del env["FLOWTRUX_DATABASE_URL"]  # the demo's own embedded SQLite file
    banner_end = re.compile(rb"Ctrl\+C stops the server")
    demo = running(flowtrux("demo", "--port", "0"), env, tmp_path, ready=banner_end)
    async with demo as (process, url, output):
        banner = output.decode()
        curl = "\n".join(
            line.strip() for line in banner.splitlines() if line.strip().startswith("curl")
        )
        assert url in curl
        streamed = await trio.run_process(
            ["sh", "-c", curl.replace("&& \\\n", "&& ")], cwd=tmp_path, capture_stdout=True
        )
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            await process.wait()
    assert (tmp_path / "flowtrux-demo.db").exists()
    events = [
        line.removeprefix(b"event: ")
        for line in streamed.stdout.splitlines()
        if line.startswith(b"event: ")
    ]
    assert events[0] == b"start"
    assert events[-1] == b"complete"
    assert events.count(b"node_start") == events.count(b"node_complete") >= 6
    last = json.loads(streamed.stdout.splitlines()[-2].removeprefix(b"data: "))
    assert last["output"] == {"urgent": True, "handled": True, "customer": "Ada Lovelace"}
