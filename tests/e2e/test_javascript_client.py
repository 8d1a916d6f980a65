"""The product doc's JavaScript client, run by Node against the real server, reads to the end."""

import os
from pathlib import Path

import httpx
import trio

from tests.e2e.conftest import Server, logged_in
from tests.support import chain, delay, transform, trigger

CLIENT = Path(__file__).with_name("stream_execution.mjs")


async def test_the_documented_client_reads_every_node_and_the_completion(server: Server) -> None:
    workspace_id = await server.member("owner@example.com")
    doc = chain(trigger(), transform("shape", {"id": "{{trigger.data.id}}"}), delay("pause", 50))
    workflow = await server.store.workflows.create(workspace_id, "JS", doc["nodes"], doc["edges"])
    async with httpx.AsyncClient(base_url=server.url) as client:
        await logged_in(client, "owner@example.com")
        cookie = f"flowtrux_session={client.cookies['flowtrux_session']}"

    env = {
        **os.environ,
        "BASE_URL": server.url,
        "COOKIE": cookie,
        "WORKFLOW_ID": workflow.id,
        "TRIGGER_DATA": '{"id": "cust-789"}',
    }
    with trio.fail_after(20):
        done = await trio.run_process(["node", str(CLIENT)], env=env, capture_stdout=True)
    printed = done.stdout.decode()
    lines = printed.splitlines()
    completed = [line.rsplit(" ", 1) for line in lines if line.startswith("✓")]

    assert [line for line in lines if line.startswith("→")] == [
        "→ Start",
        "→ Make shape",
        "→ Wait pause",
    ]
    assert [name for name, _ in completed] == ["✓ Start", "✓ Make shape", "✓ Wait pause"]
    assert int(completed[-1][1].removesuffix("ms")) >= 50
    assert lines[6].startswith("complete {")  # the terminal event, last
    assert "success: true" in printed
    assert "cancelled: false" in printed
