"""HTTP/2 streams against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/h2_streams.py): what one client can do to its connection and to
the server.

A raw h2 client sends a few frames. Afterwards the server must still serve, and the other
streams on the connection must still end properly. Each `test_upstream_...` shows what hypercorn
0.18 does without the corrections. If one of them fails after a hypercorn upgrade, upstream has
fixed that bug, and the matching correction and its tests can go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import h2.errors
import hypercorn.config
import pytest
import trio
import trio.testing
import trustme
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from priority import priority

from tests.http.bare import RawApp, RequestScope, server_config, serving
from tests.http.h2_attacks import (
    TIMEOUT,
    UNSERVABLE,
    Exchange,
    H2Client,
    Head,
    Unservable,
    connected,
    prioritize_streams_never_opened,
)

MAX_REQUESTS = 10  # keep_alive_max_requests in these tests (hypercorn's default: 1,000)
STREAM_LIMIT: int = hypercorn.config.Config.h2_max_concurrent_streams  # 100
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM


class App(RawApp):
    """Raw ASGI app: `/held` sends `first,`, then `done` once `release` is set; any other path
    gets `done` at once."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.held_finished = 0

    async def request(
        self, scope: RequestScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        held = scope["path"] == "/held"
        if held:
            await send({"type": "http.response.body", "body": b"first,", "more_body": True})
            await self.release.wait()
        await send({"type": "http.response.body", "body": b"done", "more_body": False})
        self.held_finished += held


HELD = Exchange(200, b"first,done", ended=True)


@pytest.fixture(params=["h2c", "TLS"])
def authority(request: pytest.FixtureRequest) -> trustme.CA | None:
    """The certificate authority of a TLS server, or None for h2c (prior knowledge)."""
    return trustme.CA() if request.param == "TLS" else None


async def held_open(client: H2Client) -> int:
    """Open a stream to /held and wait for its first chunk."""
    held = await client.get(b"/held")
    await client.receive_until(lambda: client.exchanges[held].body == b"first,")
    return held


async def answered(client: H2Client) -> bool:
    return await client.exchange(await client.get(b"/")) == Exchange(200, b"done", ended=True)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("case", UNSERVABLE.values(), ids=list(UNSERVABLE))
async def test_a_request_the_app_cannot_be_given_is_answered_alone(
    case: Unservable, authority: trustme.CA | None
) -> None:
    app = App()
    async with serving(app, authority=authority) as port:
        async with connected(port, authority) as client:
            held = await held_open(client)
            answer = await client.exchange(await client.send(case.head(client)))
            assert (answer.status, answer.ended) == (case.status, True)
            assert await answered(client)
            app.release.set()
            assert await client.exchange(held) == HELD
            assert client.goaway is None
        async with connected(port, authority) as another:
            assert await answered(another)


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("request_line", [b"GET /caf\xc3\xa9 HTTP/1.1", b"G\xc3\x89T / HTTP/1.1"])
async def test_http1_answers_400_to_the_same_bytes(request_line: bytes) -> None:
    """The HTTP/1.1 side (h11) refuses a request target or method that is not ASCII."""
    async with serving(App()) as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
            response = b""
            with trio.fail_after(TIMEOUT):
                while chunk := await stream.receive_some():
                    response += chunk
        assert response.startswith(b"HTTP/1.1 400 ")
        async with connected(port) as client:
            assert await answered(client)


@pytest.mark.usefixtures("corrected")
async def test_priority_for_streams_never_opened_is_ignored_beyond_the_limit() -> None:
    app = App()
    async with serving(app) as port, connected(port) as client:
        held = await held_open(client)
        await prioritize_streams_never_opened(client)
        assert await answered(client)  # its stream found the priority tree full
        await prioritize_streams_never_opened(client)
        assert await answered(client)
        app.release.set()
        assert await client.exchange(held) == HELD
        assert client.goaway is None


@pytest.mark.usefixtures("corrected")
async def test_a_connection_retires_gracefully_after_its_last_request() -> None:
    app = App()
    config = server_config(keep_alive_max_requests=MAX_REQUESTS, keep_alive_timeout=0.5)
    async with serving(app, config) as port, connected(port) as client:
        held = await held_open(client)
        for _ in range(MAX_REQUESTS - 2):
            assert await answered(client)
        last = await client.get(b"/")
        await client.receive_until(lambda: client.goaway is not None)
        assert client.goaway is not None
        assert (client.goaway.last_stream_id, client.goaway.error_code) == (last, 0)
        assert await client.exchange(last) == Exchange(200, b"done", ended=True)

        late = await client.get(b"/")  # as if sent before the GOAWAY arrived
        assert (await client.exchange(late)).reset == REFUSED_STREAM
        app.release.set()
        assert await client.exchange(held) == HELD
        await client.receive_until(lambda: client.closed)  # idle: keep_alive_timeout closes it
        async with connected(port) as another:
            assert await answered(another)


@pytest.mark.usefixtures("corrected")
async def test_a_stream_over_the_limit_is_refused_alone() -> None:
    app = App()
    async with serving(app) as port, connected(port) as client:
        # All the HEADERS go out before the client reads the server's SETTINGS, as a proxy's
        # first burst on a fresh connection does.
        held = [await client.get(b"/held") for _ in range(STREAM_LIMIT)]
        extra = await client.get(b"/held")
        assert (await client.exchange(extra)).reset == REFUSED_STREAM
        await client.receive_until(lambda: all(client.exchanges[s].body for s in held))
        app.release.set()
        assert [await client.exchange(stream_id) for stream_id in held] == [HELD] * STREAM_LIMIT
        assert await answered(client)
        assert client.goaway is None


async def fill_the_stream_limit(client: H2Client) -> list[int]:
    return [await client.get(b"/held") for _ in range(STREAM_LIMIT)]


async def use_every_request(client: H2Client) -> list[int]:
    held = [await held_open(client)]
    for _ in range(MAX_REQUESTS - 1):
        assert await answered(client)
    return held


async def hold_one(client: H2Client) -> list[int]:
    return [await held_open(client)]


@attrs.frozen
class Refusal:
    """How to bring a connection to refuse its next stream, or answer it without the app."""

    prepare: Callable[[H2Client], Awaitable[list[int]]]  # the streams held open meanwhile
    head: Callable[[H2Client], Head]
    max_requests: int = hypercorn.config.Config.keep_alive_max_requests


def get(client: H2Client) -> Head:
    return client.head(b"GET", b"/")


REFUSALS = {
    "over the stream limit": Refusal(fill_the_stream_limit, get),
    "after the last request": Refusal(use_every_request, get, MAX_REQUESTS),
    "a request without the app": Refusal(hold_one, UNSERVABLE["CONNECT without :path"].head),
}


@pytest.mark.usefixtures("corrected")
@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=list(REFUSALS))
async def test_a_stream_reset_in_the_write_that_opens_it_ends_alone(refusal: Refusal) -> None:
    app = App()
    async with serving(app, server_config(keep_alive_max_requests=refusal.max_requests)) as port:
        async with connected(port) as client:
            held = await refusal.prepare(client)
            await client.send_and_reset(refusal.head(client))
            await client.receive_until(lambda: all(client.exchanges[s].body for s in held))
            app.release.set()
            assert [await client.exchange(stream_id) for stream_id in held] == [HELD] * len(held)
            assert not client.closed
        async with connected(port) as another:
            assert await answered(another)


@pytest.mark.parametrize("case", UNSERVABLE.values(), ids=list(UNSERVABLE))
async def test_upstream_stops_serving_on_such_a_request(case: Unservable) -> None:
    with pytest.RaisesGroup(case.upstream_error, flatten_subgroups=True):
        async with serving(App()) as port, connected(port) as client:
            await client.send(case.head(client))
            with trio.fail_after(TIMEOUT):
                await trio.sleep_forever()  # until the server's failure cancels this


async def test_upstream_stops_serving_on_priority_for_streams_never_opened() -> None:
    with pytest.RaisesGroup(priority.TooManyStreamsError, flatten_subgroups=True):
        async with serving(App()) as port, connected(port) as client:
            await prioritize_streams_never_opened(client)
            with trio.fail_after(TIMEOUT):
                await trio.sleep_forever()  # until the server's failure cancels this


async def test_upstream_freezes_the_connection_after_its_last_request() -> None:
    app = App()
    async with (
        serving(app, server_config(keep_alive_max_requests=MAX_REQUESTS)) as port,
        connected(port) as client,
    ):
        held = await held_open(client)
        for _ in range(MAX_REQUESTS - 1):
            assert await answered(client)
        unanswered = await client.get(b"/")  # request 1,001 with hypercorn's default
        await client.receive_until(lambda: client.goaway is not None)
        app.release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert app.held_finished == 1  # as far as the app knows, it sent everything
        client.conn.ping(b"anything")  # upstream h2 refuses it, and hypercorn closes
        await client.flush()
        await client.receive_until(lambda: client.closed)
        assert client.exchanges[held] == Exchange(200, b"first,")  # no `done`, no END_STREAM
        assert (client.exchanges[unanswered].body, client.exchanges[unanswered].ended) == (
            b"",
            False,
        )


async def test_upstream_ends_the_connection_for_one_stream_over_the_limit() -> None:
    async with serving(App()) as port, connected(port) as client:
        held = [await client.get(b"/held") for _ in range(STREAM_LIMIT + 1)]
        await client.receive_until(lambda: client.closed)
        assert client.goaway is not None
        assert client.goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert not any(client.exchanges[stream_id].over for stream_id in held)
