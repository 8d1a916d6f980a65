"""The harness's clients: each behaviour is one real client doing one thing to one run, and
keeping what it got in a Reading for the invariants to judge.

- a starter POSTs `execute/stream` and reads to the end, or leaves after some events (closing
  its connection; over HTTP/2, either closing it or resetting the stream with RST_STREAM);
- a Stop is `POST /api/executions/{id}/cancel`;
- an observer GETs `/api/executions/{id}/events` after a `Last-Event-ID` (the header, or
  `?lastEventId=`), and reads to the end or leaves.

A client that leaves does so on a connection of its own, since closing one HTTP/2 stream of
httpx's leaves the server nothing to see.
"""

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from tests.e2e.faults.frames import Event, FrameParser, parse
from tests.http.probe import H2Client, h2_connection

STREAM_SILENT_S = 30  # how long a stream may be silent (a store that cannot answer)
H2_RESET = "HTTP/2 reset"  # an HTTP/2 stream the client resets (what an AbortController does)


@attrs.define(eq=False)
class Reading:
    """What one client got of one run's events."""

    role: str  # "starter" or "observer"
    transport: str  # HTTP/1.1, HTTP/2, or H2_RESET
    after: int = 0  # the Last-Event-ID it sent (0: from the start)
    sent_at: float = 0.0  # trio's clock when it sent its request
    answered_at: float | None = None  # when the answer's head came
    status: int | None = None
    answer: str = ""  # the body of an answer that was not a stream
    events: list[Event] = attrs.field(factory=list)
    malformed: list[str] = attrs.field(factory=list)
    ended_at: float | None = None  # when the reading ended, however it did
    ended_by_server: bool = False  # the server ended the response: read to its end
    left: bool = False  # the client went away on purpose
    broken: str | None = None  # the connection failed under it
    first: trio.Event = attrs.field(factory=trio.Event)  # an event came, or the reading ended

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else self.after

    def describe(self) -> str:
        how = (
            "read to its end" if self.ended_by_server
            else "left" if self.left
            else f"broken ({self.broken})" if self.broken
            else "unfinished"
        )  # fmt: skip
        ids = f"{self.events[0].seq}..{self.events[-1].seq}" if self.events else "none"
        return (
            f"{self.role} over {self.transport} after id {self.after}: HTTP {self.status},"
            f" {how}, events {ids}"
        )

    def take(self, events: list[Event]) -> None:
        self.events += events
        if self.events:
            self.first.set()


@attrs.frozen
class Target:
    """A server, the owner's session on it, and a client that shares its connections (over
    HTTP/2, one connection for every stream) for the clients that do not leave."""

    url: str
    http_version: str
    shared: httpx.AsyncClient
    database: Path  # the server's SQLite file, where the invariants read what is stored

    def client(self) -> httpx.AsyncClient:
        """A client with the owner's session and connections of its own."""
        return client_for(self.url, self.http_version, self.shared.cookies)


def client_for(
    url: str, http_version: str, cookies: httpx.Cookies | None = None
) -> httpx.AsyncClient:
    """A client of `url` over `http_version`: HTTP/2 as conftest's new_client speaks it, h2c
    with prior knowledge; a long timeout, since a store that cannot answer keeps streams
    silent a while."""
    http2 = http_version == "HTTP/2"
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    return httpx.AsyncClient(
        base_url=url,
        http1=not http2,
        http2=http2,
        timeout=STREAM_SILENT_S,
        cookies=cookies,
        limits=limits,
    )


async def read_events(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    reading: Reading,
    *,
    leave_after: int | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Read an event stream into `reading`, to its end or until `leave_after` events came.
    Never raises for what the server does: a failure is kept in the reading."""
    reading.sent_at = trio.current_time()
    parser = FrameParser()
    try:
        async with client.stream(method, url, json=body, headers=headers) as response:
            reading.status, reading.answered_at = response.status_code, trio.current_time()
            if response.status_code != 200:
                reading.answer = (await response.aread()).decode(errors="replace")[:500]
                return
            async for chunk in response.aiter_raw():
                reading.take(parser.feed(chunk))
                if leave_after is not None and len(reading.events) >= leave_after:
                    reading.left = True
                    return
            reading.ended_by_server = True
    except httpx.HTTPError as exc:
        reading.broken = f"{type(exc).__name__}: {exc}"
    finally:
        reading.malformed += parser.malformed
        reading.ended_at = trio.current_time()
        reading.first.set()


def stream_path(workflow_id: str) -> str:
    return f"/api/workflows/{workflow_id}/execute/stream"


async def start(
    target: Target, workflow_id: str, body: Any, reading: Reading, leave_after: int | None
) -> None:
    """A starter over httpx: reads to the end, or leaves after `leave_after` events by closing
    its connection (one of its own)."""
    if leave_after is None:
        await read_events(target.shared, "POST", stream_path(workflow_id), reading, body=body)
        return
    async with target.client() as own:
        await read_events(own, "POST", stream_path(workflow_id), reading, body=body,
                          leave_after=leave_after)  # fmt: skip


async def start_and_reset(
    target: Target,
    workflow_id: str,
    body: Any,
    reading: Reading,
    leave_after: int,
    ended: Callable[[str], Awaitable[None]],
) -> None:
    """A starter over a raw HTTP/2 connection that resets its stream after `leave_after`
    events, then keeps the connection open until `ended(execution_id)` returns: the reset
    alone must end the run."""
    reading.sent_at = trio.current_time()
    port = httpx.URL(target.url).port
    assert port is not None
    cookie = "; ".join(f"{name}={value}" for name, value in target.shared.cookies.items())
    head = [(b"content-type", b"application/json"), (b"cookie", cookie.encode())]
    try:
        async with h2_connection(port) as h2c:
            stream_id = await h2c.request(
                stream_path(workflow_id), [json.dumps(body).encode()], headers=head
            )

            def enough() -> bool:
                received = h2c.bodies.get(stream_id, b"")
                return stream_id in h2c.ended or len(parse(received)) >= leave_after

            await _until(h2c, enough, STREAM_SILENT_S)
            reading.status, reading.answered_at = h2c.statuses.get(stream_id), trio.current_time()
            received = h2c.bodies.get(stream_id, b"")
            if reading.status != 200:
                reading.answer = received.decode(errors="replace")[:500]
                return
            if stream_id in h2c.ended:
                reading.ended_by_server = True
            else:
                await h2c.reset(stream_id)
                reading.left = True
            parser = FrameParser()
            reading.take(parser.feed(received))
            reading.malformed += parser.malformed
            reading.first.set()
            if reading.left and reading.events:
                await ended(reading.events[0].json()["executionId"])
    except (AssertionError, OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        reading.broken = f"{type(exc).__name__}: {exc}"
    finally:
        reading.ended_at = trio.current_time()
        reading.first.set()


@attrs.frozen
class StopAnswer:
    status: int  # 0: no answer (the connection failed)
    answer: Any  # its JSON, or its text, or the failure
    sent_at: float
    answered_at: float

    def json_field(self, name: str) -> Any:
        return self.answer.get(name) if isinstance(self.answer, dict) else None


async def _until(h2c: H2Client, condition: Callable[[], bool], within_s: float) -> None:
    """H2Client.until, for up to `within_s` (its own bound is a few seconds)."""
    with trio.fail_after(within_s):
        while True:
            try:
                return await h2c.until(condition)
            except trio.TooSlowError:
                continue  # what it read is recorded: read on


async def stop(client: httpx.AsyncClient, execution_id: str) -> StopAnswer:
    """The Stop button (202 CANCELLING, or 409 once the run ended), as it was answered."""
    sent_at = trio.current_time()
    try:
        response = await client.post(f"/api/executions/{execution_id}/cancel")
    except httpx.HTTPError as exc:
        return StopAnswer(0, f"{type(exc).__name__}: {exc}", sent_at, trio.current_time())
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:500]
    return StopAnswer(response.status_code, answer, sent_at, trio.current_time())


async def observe(
    target: Target,
    execution_id: str,
    reading: Reading,
    *,
    in_query: bool,
    leave_after: int | None,
) -> None:
    """An observer from `reading.after` on (the Last-Event-ID header, or `?lastEventId=`), to
    the end or until `leave_after` events came (then on a connection of its own)."""
    url = f"/api/executions/{execution_id}/events"
    headers: dict[str, str] = {}
    if in_query:
        url += f"?lastEventId={reading.after}"
    else:
        headers["Last-Event-ID"] = str(reading.after)
    if leave_after is None:
        await read_events(target.shared, "GET", url, reading, headers=headers)
        return
    async with target.client() as own:
        await read_events(own, "GET", url, reading, headers=headers, leave_after=leave_after)
