"""Reading HTTP/1.1 requests, against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/h11_reading.py), with a raw socket client.

Bytes after a whole request (a pipelined request, a stray CRLF) must not stop the server from
noticing that the client closed; pipelined requests must still be answered, in order; and
`100 Continue` must go out only once the app asks for the body. Each `test_upstream_...` shows
what hypercorn 0.18 does without the correction; if one fails after a hypercorn upgrade,
upstream has fixed that bug, and the correction and its tests can go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import trio
import trio.testing

from flowtrux.http.hypercorn_fixes import h11_reading
from flowtrux.http.hypercorn_fixes.fix import Fix
from tests.http.bare import serving
from tests.http.probe import TIMEOUT, UPSTREAM_WAIT, Probe, Seen, h2_connection, read_until

STREAM = b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n"
BEHIND = {"stray CRLF": b"\r\n", "pipelined request": b"GET /echo HTTP/1.1\r\nHost: test\r\n\r\n"}
MiB = 2**20


@pytest.fixture(autouse=True)
def all_corrections_but_the_reading(
    all_corrections_but: Callable[[Sequence[Fix]], None],
) -> None:
    """Each test starts from hypercorn with every correction but `h11_reading`'s;
    monkeypatch puts things back afterwards."""
    all_corrections_but(h11_reading.FIXES)


async def closed_behind(behind: bytes, wait: float) -> Seen:
    """A client asks for `/stream` with `behind` after the request, reads the start of the
    answer, and closes. Returns how the app handled it, once it ended or after `wait` seconds."""
    probe = Probe()
    async with serving(probe) as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(STREAM + behind)
            await read_until(stream, b"first,")
        handling = probe.handling("/stream")
        with trio.move_on_after(wait):
            await handling.ended.wait()
        seen = handling.seen()
        probe.release.set()
    return seen


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("behind", BEHIND.values(), ids=BEHIND.keys())
async def test_a_close_behind_a_whole_request_reaches_its_app(behind: bytes) -> None:
    seen = await closed_behind(behind, TIMEOUT)
    assert seen.ended
    assert seen.cancelled  # it had not ended its answer


@pytest.mark.parametrize("behind", BEHIND.values(), ids=BEHIND.keys())
async def test_upstream_stops_reading_behind_a_whole_request(behind: bytes) -> None:
    seen = await closed_behind(behind, UPSTREAM_WAIT)
    assert not seen.ended


@pytest.mark.usefixtures("corrected")
async def test_pipelined_requests_are_answered_in_order() -> None:
    probe = Probe()
    second, third = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in (b"second", b"third")
    )
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(STREAM + second + third)
        received = await read_until(stream, b"first,")
        await trio.testing.wait_all_tasks_blocked()  # the server has read it all
        probe.release.set()  # nothing more comes: the held requests must go on by themselves
        received += await read_until(stream, b"third")
    assert received.count(b"HTTP/1.1 200 ") == 3
    assert received.index(b"last") < received.index(b"second") < received.index(b"third")


@pytest.mark.usefixtures("corrected")
async def test_reading_stops_once_a_little_is_held() -> None:
    """Reading on while paused must not read without bound: a pipelined 32 MiB body waits in
    the client's and the kernel's buffers (a few MiB), not in the server's memory."""
    probe = Probe()
    body = b"x" * (32 * MiB)
    post = b"POST /size HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(STREAM)
        await read_until(stream, b"first,")
        sent = trio.Event()

        async def send_pipelined() -> None:
            await stream.send_all(post + body)
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_pipelined)
            with trio.move_on_after(UPSTREAM_WAIT):
                await sent.wait()
            assert not sent.is_set()  # the server stopped reading
            probe.release.set()
            received = await read_until(stream, b"%d" % len(body))
    assert received.endswith(b"\r\n\r\n%d" % len(body))  # then it read the rest


def expecting(path: str, length: int) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
    return f"{head}Content-Length: {length}\r\n\r\n".encode()


async def answer_to_expect_100(path: str) -> bytes:
    """What a client that sends `Expect: 100-continue` and waits gets when the app answers (413)
    without asking for the body."""
    probe = Probe()
    probe.release.set()
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(expecting(path, 5_000_000))
        return await read_until(stream, b"too large")


@pytest.mark.usefixtures("corrected")
async def test_no_100_continue_before_an_answer_that_does_not_read_the_body() -> None:
    received = await answer_to_expect_100("/refuse")
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b" 100 " not in received


async def test_upstream_sends_100_continue_before_any_check() -> None:
    received = await answer_to_expect_100("/refuse")
    assert received.startswith(b"HTTP/1.1 100 ")


@pytest.mark.usefixtures("corrected")
async def test_100_continue_goes_out_once_the_app_reads_the_body() -> None:
    async with serving(Probe()) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(expecting("/echo", 5))
        assert (await read_until(stream, b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"hello")
        received = await read_until(stream, b"hello")
    assert received.startswith(b"HTTP/1.1 200 ")


@pytest.mark.usefixtures("corrected")
async def test_http2_sends_no_100_continue() -> None:
    """RFC 9113 allows 100 on HTTP/2; hypercorn sends none, before checks or after: nothing to
    correct there."""
    probe = Probe()
    probe.release.set()
    expect = [(b"expect", b"100-continue")]
    async with serving(probe) as port, h2_connection(port) as client:
        refused = await client.request("/refuse", [], end=False, headers=expect)
        assert await client.answer(refused) == (413, b"too large")
        echoed = await client.request("/echo", [b"hello"], headers=expect)
        assert await client.answer(echoed) == (200, b"hello")
    assert client.informational == {}
