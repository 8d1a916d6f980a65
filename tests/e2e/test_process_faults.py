"""`flowtrux serve` as a real process under faults a user can run into:

- SIGTERM while another connection holds SQLite's write lock and a run's row is waiting for it:
  the waiting call still answers 503 `store_unavailable` (not 500), the open stream ends, the
  process exits 0 in bounded time, and nothing of the refused call is stored;
- observers of a large finished execution that stop reading: the server's memory stays bounded
  (what it holds per observer is a page and a frame, not the whole history), it keeps serving
  once they leave, and a fresh observer still gets every event.
"""

import signal
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.e2e.processes import DATABASE, create_workflow, flowtrux, rss_bytes, running, server_env
from tests.faults import write_lock_held
from tests.support import chain, delay, transform, trigger

TERMINAL = {"complete", "error", "cancelled"}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / DATABASE


@pytest.fixture
async def env(tmp_path: Path) -> dict[str, str]:
    return await server_env(tmp_path)


def executions_in(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT id FROM executions ORDER BY id")]


async def test_sigterm_while_the_store_is_locked_ends_the_server(
    env: dict[str, str], database: Path, tmp_path: Path
) -> None:
    # With two runs per workspace (the stream's and one more), a second execute call answers
    # 429 exactly while the other holds the last slot, i.e. while its row waits for the lock:
    # that is the moment the original bug needs, observed from outside.
    env["FLOWTRUX_MAX_RUNS_PER_WORKSPACE"] = "2"
    serve = running(flowtrux("serve", "--port", "0"), env, tmp_path)
    async with (
        serve as (process, url, output),
        httpx.AsyncClient(base_url=url, timeout=60) as client,  # the stream is silent a while
    ):
        workflow_id = await create_workflow(client, chain(trigger(), delay("wait", 60_000)))
        execute = f"/api/workflows/{workflow_id}/execute"
        streamed: list[ServerSentEvent] = []
        waiting = trio.Event()

        async def follow_stream() -> None:
            async with aconnect_sse(client, "POST", f"{execute}/stream", json={}) as source:
                async for event in source.aiter_sse():
                    streamed.append(event)
                    if event.event == "node_start" and event.json()["nodeId"] == "wait":
                        waiting.set()

        send_answer, answers = trio.open_memory_channel[httpx.Response](2)

        async def call_execute() -> None:
            await send_answer.send(await client.post(execute, json={}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_stream)
            with trio.fail_after(10):
                await waiting.wait()
            with write_lock_held(database):
                nursery.start_soon(call_execute)
                nursery.start_soon(call_execute)
                with trio.fail_after(10):
                    refused = await answers.receive()
                assert refused.status_code == 429, refused.text  # the other call holds a slot
                process.send_signal(signal.SIGTERM)
                # The old code waited for good for the run whose row could not be written.
                with trio.fail_after(30):
                    exit_code = await process.wait()
                with trio.fail_after(5):  # the other call has had its answer
                    unavailable = await answers.receive()

    assert exit_code == 0, output.decode()
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.headers["content-type"] == "application/json"
    assert int(unavailable.headers["retry-after"]) > 0
    body = unavailable.json()
    # Its row waited for the lock when the signal came: the shutdown gave up on it, unless the
    # lock wait had run out just before.
    assert body["code"] in {"shutting_down", "store_unavailable"}, body
    assert isinstance(body["error"], str)
    assert body["error"].strip()
    # The stream's run could not store its end: its stream may end without a terminal event,
    # but never with one that claims another outcome.
    names = [event.event for event in streamed]
    assert names[:2] == ["start", "node_start"]
    assert set(names) & TERMINAL <= {"cancelled"}
    # The lock is released: only the stream's run was ever stored.
    assert executions_in(database) == [streamed[0].json()["executionId"]]


OBSERVERS = 8
# A stalled observer holds one page (1 MiB, or one event when an event is larger: here a
# ~1.8 MB node_complete) and the frame being written (that event again as bytes, and hypercorn's
# chunked copy of it): ~6 MB, ~50 MB for 8. A run still live would add at most 1 MiB queued
# each. The old code held the whole ~30 MB history per observer: ~270 MB for 8.
GROWTH_BOUND = 120 * 1024 * 1024


async def stalled_observer(url: httpx.URL, path: str, cookie: str) -> trio.SocketStream:
    """An SSE observer on a socket with a tiny receive buffer that sends its request and then
    reads nothing: the server's writes to it block almost at once."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    await sock.connect((url.host, url.port))
    stream = trio.SocketStream(sock)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Accept: text/event-stream\r\nCookie: flowtrux_session={cookie}\r\n\r\n"
    )
    await stream.send_all(request.encode())
    return stream


async def settled_rss(pid: int) -> int:
    """The process's RSS once two samples 0.5 s apart differ by less than 1 MB (up to 10 s)."""
    previous = rss_bytes(pid)
    for _ in range(20):
        await trio.sleep(0.5)
        current = rss_bytes(pid)
        if abs(current - previous) < 1024 * 1024:
            return current
        previous = current
    return previous


async def test_stalled_observers_of_a_large_execution_keep_the_server_memory_bounded(
    env: dict[str, str], tmp_path: Path
) -> None:
    copies = [transform(f"copy-{n}", "{{trigger.data}}") for n in range(16)]
    # RSS measures what the server holds because it fixes glibc's mmap threshold when it
    # serves (flowtrux/memory.py); with glibc's default it grew by 91-263 MiB here.
    serve = running(flowtrux("serve", "--port", "0"), env, tmp_path)
    async with (
        serve as (process, url, output),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        workflow_id = await create_workflow(client, chain(trigger(), *copies))
        # ~0.9 MB in, under the 1 MiB body limit; each node's event carries its input and its
        # output, so the stored events total ~30 MB.
        ran = await client.post(
            f"/api/workflows/{workflow_id}/execute", json={"blob": "x" * 900_000}
        )
        assert ran.status_code == 200, ran.text[:500]
        assert ran.json()["success"] is True
        execution_id = ran.json()["executionId"]
        path = f"/api/executions/{execution_id}/events"
        baseline = await settled_rss(process.pid)

        cookie = client.cookies["flowtrux_session"]
        observers = [await stalled_observer(httpx.URL(url), path, cookie) for _ in range(OBSERVERS)]
        try:
            with trio.fail_after(10):  # the server is answering each of them (nothing is read)
                for observer in observers:
                    await trio.lowlevel.wait_readable(observer.socket)
            growth = await settled_rss(process.pid) - baseline
        finally:
            for observer in observers:
                await observer.aclose()
        assert growth < GROWTH_BOUND, f"RSS grew by {growth / 2**20:.0f} MiB"

        health = await client.get("/healthz")
        assert health.status_code == 200
        async with aconnect_sse(client, "GET", path) as source:
            events = [(int(event.id), event.event) async for event in source.aiter_sse()]
        assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
        assert len(events) == 1 + 2 * 17 + 1  # start, each node's start and log, complete
        assert events[-1][1] == "complete"
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0, output.decode()


async def test_a_second_signal_ends_the_server_at_once_without_a_traceback(
    env: dict[str, str], database: Path, tmp_path: Path
) -> None:
    serve = running(flowtrux("serve", "--port", "0"), env, tmp_path)
    async with (
        serve as (process, url, output),
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        workflow_id = await create_workflow(client, chain(trigger(), delay("wait", 60_000)))
        stream = f"/api/workflows/{workflow_id}/execute/stream"
        async with aconnect_sse(client, "POST", stream, json={}) as source:
            async for event in source.aiter_sse():
                if event.event == "node_start" and event.json()["nodeId"] == "wait":
                    break
            # The run's end cannot be stored: the first signal's drain would wait 10 s for it.
            with write_lock_held(database):
                process.send_signal(signal.SIGINT)
                await trio.sleep(0.5)
                process.send_signal(signal.SIGINT)  # Ctrl+C pressed again
                with trio.fail_after(8):
                    exit_code = await process.wait()
    assert exit_code == 0, output.decode()
    assert b"Traceback" not in output
    assert b"a second signal" in output
