"""HTTP/1.1 answers after which hypercorn closes the connection, against a real in-process
hypercorn (see flowtrux/http/hypercorn_fixes/h11_answers.py), with a raw socket client: such an
answer says `Connection: close`, and an answer on a connection that goes on does not. The
`test_upstream_...` shows what hypercorn 0.18 does without the correction."""

from __future__ import annotations

import pytest
import trio

from tests.http.bare import serving
from tests.http.probe import TIMEOUT, Probe

WHOLE = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi"
UNFINISHED = b"POST /refuse HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nonly 7"


async def answer_and_end(request: bytes) -> tuple[bytes, bool]:
    """Send `request` to an app that answers 413 without reading (`/refuse`) or echoes the
    body; the answer's head, and whether the server then closed the connection."""
    probe = Probe()
    probe.release.set()
    async with serving(probe) as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(request)
        received = b""
        with trio.move_on_after(TIMEOUT / 5):
            while chunk := await stream.receive_some():
                received += chunk
            return received.partition(b"\r\n\r\n")[0].lower(), True
        return received.partition(b"\r\n\r\n")[0].lower(), False


@pytest.mark.usefixtures("corrected")
async def test_an_answer_before_the_whole_body_says_the_connection_closes() -> None:
    head, closed = await answer_and_end(UNFINISHED)
    assert head.startswith(b"http/1.1 413")
    assert b"\r\nconnection: close" in head
    assert closed


@pytest.mark.usefixtures("corrected")
async def test_an_answer_on_a_connection_that_goes_on_says_nothing_of_closing() -> None:
    head, closed = await answer_and_end(
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert head.startswith(b"http/1.1 200")
    assert b"connection:" not in head
    assert not closed


async def test_upstream_closes_after_such_an_answer_without_saying_so() -> None:
    head, closed = await answer_and_end(UNFINISHED)
    assert head.startswith(b"http/1.1 413")
    assert b"connection:" not in head
    assert closed
