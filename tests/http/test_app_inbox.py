"""What the app receives, and when it is stopped, against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/app_inbox.py), with raw HTTP/1.1 (socket) and HTTP/2 (h2) clients.

The request body reaches the app through a queue of 10 messages. Whatever that queue holds, the
app must learn that its client has left, an app whose client left before the answer ended must be
stopped, and an app that answers without reading its body must never hold up the connection.
Each `test_upstream_...` shows what hypercorn 0.18 does without the correction; if one fails
after a hypercorn upgrade, upstream has fixed that bug, and the correction and its tests can go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from flowtrux.http.hypercorn_fixes import app_inbox
from flowtrux.http.hypercorn_fixes.fix import Fix
from tests.http.bare import serving
from tests.http.probe import (
    TIMEOUT,
    UPSTREAM_WAIT,
    H2Client,
    Probe,
    Seen,
    chunked_request,
    h2_connection,
    read_until,
)

PIECES = [b"x" * 100] * 9  # 9 pieces and the end of the body: the queue's 10 messages


@pytest.fixture(autouse=True)
def all_corrections_but_the_inbox(
    all_corrections_but: Callable[[Sequence[Fix]], None],
) -> None:
    """Each test starts from hypercorn with every correction but `app_inbox`'s (without the
    others, upstream fails earlier, in other ways); monkeypatch puts things back afterwards."""
    all_corrections_but(app_inbox.FIXES)


async def answered_then_told(http_version: str, wait: float) -> Seen:
    """A client sends a body in 9 pieces and its end; once it all waits in the queue, the app
    answers without reading it, then reads. Returns how the app handled it, once it ended or
    after `wait` seconds."""
    probe = Probe()
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        if http_version == "HTTP/1.1":
            await stream.send_all(chunked_request("/answer", PIECES))
        else:
            client = H2Client(stream)
            stream_id = await client.request("/answer", PIECES)
        await trio.testing.wait_all_tasks_blocked()  # the body waits in the app's queue
        probe.release.set()
        if http_version == "HTTP/1.1":
            assert b"answered" in await read_until(stream, b"answered")
        else:
            assert await client.answer(stream_id) == (200, b"answered")
        handling = probe.handling("/answer")
        with trio.move_on_after(wait):
            await handling.ended.wait()
        return handling.seen()


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2"])
async def test_an_app_learns_its_answer_is_over_whatever_its_queue_holds(
    http_version: str,
) -> None:
    handling = await answered_then_told(http_version, TIMEOUT)
    # The disconnect first: no one is left to answer, so the unread body is not worth reading.
    assert handling.received == ["http.disconnect"]
    assert not handling.cancelled  # it had answered: what it does afterwards is its own


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2"])
async def test_upstream_keeps_the_disconnect_behind_an_unread_body(http_version: str) -> None:
    """Upstream's last `send` of the app waits for room to put the disconnect, which the app
    never makes; the earlier correction dropped that disconnect instead."""
    handling = await answered_then_told(http_version, UPSTREAM_WAIT)
    assert "http.disconnect" not in handling.received
    assert not handling.ended


@asynccontextmanager
async def left(port: int, how: str) -> AsyncIterator[None]:
    """A client sends `/hold` a body in 9 pieces and its end, then leaves: `how` is `close`
    (HTTP/1.1), `reset` (HTTP/2 RST_STREAM, the connection stays open) or `drop` (HTTP/2, the
    connection closes)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        if how == "close":
            await stream.send_all(chunked_request("/hold", PIECES))
        else:
            client = H2Client(stream)
            stream_id = await client.request("/hold", PIECES)
        await trio.testing.wait_all_tasks_blocked()  # the body waits in the app's queue
        if how == "reset":
            await client.reset(stream_id)
            yield
            return
    yield


LEAVING = ["close", "reset", "drop"]


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("how", LEAVING)
async def test_a_client_that_leaves_before_the_answer_stops_its_app(how: str) -> None:
    probe = Probe()
    async with serving(probe) as port, left(port, how):
        with trio.fail_after(TIMEOUT):
            await probe.handling("/hold").ended.wait()
    assert probe.handling("/hold").cancelled
    assert probe.handling("/hold").received == []  # cancelled before it read a byte


@pytest.mark.parametrize("how", LEAVING)
async def test_upstream_lets_the_app_of_a_client_that_left_go_on(how: str) -> None:
    probe = Probe()
    async with serving(probe) as port, left(port, how):
        await trio.sleep(UPSTREAM_WAIT)
        assert not probe.handling("/hold").ended.is_set()
        probe.release.set()


async def resets_during_work(requests: int, wait: float) -> list[Seen]:
    """On one HTTP/2 connection, `requests` times: a request with its body, then RST_STREAM once
    the app works on it (what a login attack does to argon2). Returns how the apps handled them
    once they all ended or after `wait` seconds, after checking that the connection still
    serves."""
    probe = Probe()
    async with serving(probe) as port, h2_connection(port) as client:
        for _ in range(requests):
            stream_id = await client.request("/work", [b'{"email": "a@b.c"}'])
            await trio.testing.wait_all_tasks_blocked()  # the app has read it and works
            await client.reset(stream_id)
        with trio.move_on_after(wait):
            for handling in probe.handled:
                await handling.ended.wait()
        handled = [handling.seen() for handling in probe.handled]
        assert await client.answer(await client.request("/echo", [b"still"])) == (200, b"still")
    return handled


@pytest.mark.usefixtures("corrected")
async def test_resetting_streams_cancels_the_work_of_their_apps() -> None:
    handled = await resets_during_work(20, TIMEOUT)
    assert [(seen.ended, seen.cancelled) for seen in handled] == [(True, True)] * 20


async def test_upstream_works_on_for_streams_that_were_reset() -> None:
    handled = await resets_during_work(3, UPSTREAM_WAIT)
    assert [(seen.ended, seen.cancelled) for seen in handled] == [(False, False)] * 3


async def refused_then_next(wait: float) -> tuple[int, bytes] | None:
    """HTTP/2: once a body in 20 pieces fills the app's queue, the app refuses it (413) without
    reading it; then a request on the same connection. Returns the second answer, or None if it
    did not come within `wait` seconds."""
    probe = Probe()
    async with serving(probe) as port, h2_connection(port) as client:
        refused = await client.request("/refuse", [b"x" * 1000] * 20)
        await trio.testing.wait_all_tasks_blocked()  # the reader waits for room in the queue
        probe.release.set()
        assert await client.answer(refused) == (413, b"too large")
        with trio.move_on_after(wait):
            return await client.answer(await client.request("/echo", [b"next"]))
    return None


@pytest.mark.usefixtures("corrected")
async def test_an_app_that_refuses_its_body_unread_leaves_the_connection_serving() -> None:
    assert await refused_then_next(TIMEOUT) == (200, b"next")


async def test_upstream_blocks_the_connection_behind_a_body_no_one_reads() -> None:
    assert await refused_then_next(UPSTREAM_WAIT) is None
