"""HTTP/2 back-pressure against a real in-process hypercorn (see
flowtrux/http/hypercorn_fixes/flow_control.py).

A raw h2 client requests an endless body, reads the response headers and then never reads
nor acknowledges DATA (no WINDOW_UPDATE), so its 65,535-byte flow-control window runs out.
A correct server must then stop accepting body chunks from the ASGI app.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio
from hypercorn.protocol.h2 import StreamBuffer
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

from flowtrux.http import hypercorn_fixes
from tests.http.bare import RawApp, RequestScope, serving

MiB = 2**20
CHUNK = b"x" * (16 * 1024)
BOUNDED = 1 * MiB  # patched: ~80 KiB measured (64 KiB flow window + StreamBuffer)
UNBOUNDED = 20 * MiB  # unpatched: reached in well under a second
APP_CAP = 32 * MiB  # the app stops writing here, so an unpatched run cannot eat all memory


class EndlessBody(RawApp):
    """Raw ASGI app: answers any request with 16 KiB chunks forever; counts what `send` took."""

    def __init__(self) -> None:
        self.sent = 0
        self.unbounded = trio.Event()  # set once more than UNBOUNDED bytes were accepted

    async def request(
        self, scope: RequestScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._cancel_on_disconnect, receive, nursery.cancel_scope)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while self.sent < APP_CAP:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                self.sent += len(CHUNK)
                if self.sent > UNBOUNDED:
                    self.unbounded.set()
            await trio.sleep_forever()

    @staticmethod
    async def _cancel_on_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()


@asynccontextmanager
async def stalled_get(port: int) -> AsyncIterator[None]:
    """Open an h2 (prior knowledge) GET /, read the response headers, then stop reading."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", "/"), (":scheme", "http")]
        conn.send_headers(1, [*headers, (":authority", f"127.0.0.1:{port}")], end_stream=True)
        await stream.send_all(conn.data_to_send())
        status = None
        with trio.fail_after(2):
            while status is None:
                data = await stream.receive_some()
                assert data, "server closed the connection before responding"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                # SETTINGS ACK only: DATA is never acknowledged, so no WINDOW_UPDATE is sent.
                await stream.send_all(conn.data_to_send())
        assert status == b"200"
        yield


@pytest.fixture
def original_pop(upstream: None) -> Callable[..., Any]:
    """Upstream's `StreamBuffer.pop` (each test starts from upstream hypercorn: conftest.py)."""
    original: Callable[..., Any] = StreamBuffer.pop
    return original


@pytest.mark.usefixtures("corrected")
async def test_patched_writer_is_bounded_when_client_stops_reading() -> None:
    app = EndlessBody()
    async with serving(app) as port, stalled_get(port):
        await trio.sleep(1.0)
        first = app.sent
        await trio.sleep(0.5)
        second = app.sent
    assert first < BOUNDED, f"app wrote {first} bytes to a client that stopped reading"
    assert second - first <= len(CHUNK), f"still writing: {first} -> {second} bytes"


async def test_upstream_pop_still_needs_the_patch() -> None:
    """Unpatched hypercorn lets the app write without bound to a stalled HTTP/2 client.

    This documents that flowtrux.http.hypercorn_fixes.flow_control is still needed. If this test
    fails after a hypercorn upgrade, upstream has fixed StreamBuffer.pop: delete that correction
    and this test.
    """
    assert not hypercorn_fixes.is_applied(), "patch applied at import time; cannot observe upstream"
    app = EndlessBody()
    async with serving(app) as port, stalled_get(port):
        with trio.move_on_after(1.0):
            await app.unbounded.wait()
    assert app.sent > UNBOUNDED, f"upstream bounded the writer at {app.sent} bytes"


def test_apply_is_idempotent() -> None:
    hypercorn_fixes.apply()
    patched = StreamBuffer.pop
    hypercorn_fixes.apply()
    assert hypercorn_fixes.is_applied()
    assert StreamBuffer.pop is patched


def test_apply_skips_other_hypercorn_versions(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, original_pop: Any
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda _name: "0.19.0")
    with caplog.at_level(logging.WARNING, logger=hypercorn_fixes.__name__):
        hypercorn_fixes.apply()
    assert StreamBuffer.pop is original_pop
    assert "not 0.18.x" in caplog.text


def test_apply_skips_changed_upstream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fixed_upstream(self: Any, max_length: int) -> bytes:  # pragma: no cover
        return bytes(self.buffer[:max_length])

    monkeypatch.setattr(StreamBuffer, "pop", fixed_upstream)
    with caplog.at_level(logging.WARNING, logger=hypercorn_fixes.__name__):
        hypercorn_fixes.apply()
    assert StreamBuffer.pop is fixed_upstream
    assert "changed" in caplog.text
