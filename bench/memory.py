"""Goal 6: the server's memory (RSS) per streaming run parked in a `delay`, and its growth while
an HTTP/2 client opens a stream of large events and never reads it.

Both against `flowtrux serve` (one worker, SQLite), its RSS read from /proc:
- parked: after a few uncounted runs, RSS with nothing going on, then with 1,000 runs of
  trigger -> delay 60 s streamed at once (each on its own HTTP/1.1 connection, read up to the
  delay's `node_start`): the difference over 1,000. The streams are then closed, and every run
  must end CANCELLED;
- never read: trigger (its static data a 256 KiB string) -> 24 transforms each outputting it,
  so that each `node_complete` is about 512 KiB (its input and output). After two runs read
  whole (uncounted), an HTTP/2 client (h2c, prior knowledge) sends the request and never reads
  again; RSS 2 s after the run's end (the stream still open) minus RSS before; then the client
  closes, and what the server gives back then is what it held for the unread stream. RSS is
  also sampled from the run's start (its peak), and the same run read whole is measured the
  same way.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import attrs
import h2.config
import h2.connection
import trio

from bench import procs, served, sse, workflows
from bench.results import Figure, Section, at_most

KIB, MIB = 1024, 1024 * 1024
MAX_PARKED_KIB = 64
MAX_UNREAD_GROWTH_MIB = 2
OPENING_AT_ONCE = 20  # streams being opened at the same time
LARGE_BYTES = 256 * KIB
LARGE_NODES = 24
SAMPLE_S = 0.02
SETTLE_S = 1.0
AFTER_END_S = 2.0
END_TIMEOUT_S = 120


def statuses(database: Path) -> dict[str, int]:
    """Executions by status, read through a read-only connection of our own."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT status, count(*) FROM executions GROUP BY status")
        return dict(rows.fetchall())


def largest_event(database: Path) -> int:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        size: int = conn.execute("SELECT max(length(data)) FROM execution_events").fetchone()[0]
        return size


async def until_none_running(database: Path) -> dict[str, int]:
    with trio.fail_after(END_TIMEOUT_S):
        while True:
            found = await trio.to_thread.run_sync(statuses, database)
            if not found.get("RUNNING"):
                return found
            await trio.sleep(0.1)


async def park(server: served.Served, request: bytes, count: int) -> list[sse.EventStream]:
    """`count` streams, each read up to the delay's `node_start`."""
    parked: list[sse.EventStream] = []
    limiter = trio.CapacityLimiter(OPENING_AT_ONCE)

    async def one() -> None:
        async with limiter:
            stream = await sse.EventStream.open(server.port, request)
            parked.append(stream)
            await stream.until(b"node_start", b'"nodeId":"wait"')

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return parked


async def close_all(streams: list[sse.EventStream]) -> None:
    for stream in streams:
        await stream.aclose()


async def parked_runs(server: served.Served, count: int) -> dict[str, Any]:
    doc = workflows.chain([workflows.trigger(), workflows.delay("wait", 60_000)])
    request = server.execute(await server.create_workflow("Parked", *doc))
    await close_all(await park(server, request, OPENING_AT_ONCE))  # warm-up
    await until_none_running(server.database)
    await trio.sleep(SETTLE_S)
    before = procs.rss_bytes(server.process.pid)
    streams = await park(server, request, count)
    await trio.sleep(SETTLE_S)
    parked = procs.rss_bytes(server.process.pid)
    await close_all(streams)
    ended = await until_none_running(server.database)
    return {
        "runs": count,
        "rss_before_mib": round(before / MIB, 1),
        "rss_parked_mib": round(parked / MIB, 1),
        "kib_per_run": round((parked - before) / count / KIB, 1),
        "ended": ended,
    }


def large_workflow() -> tuple[list[Any], list[Any]]:
    trigger = workflows.trigger()
    trigger["config"]["staticData"] = {"big": "x" * LARGE_BYTES}
    nodes = [
        {"id": f"t{i}", "type": "transform", "name": f"t{i}",
         "config": {"output": {"big": "{{trigger.data.big}}"}}}
        for i in range(1, LARGE_NODES + 1)
    ]  # fmt: skip
    return workflows.chain([trigger, *nodes])


async def open_unread_h2(server: served.Served, workflow_id: str) -> trio.SocketStream:
    """An HTTP/2 stream of the run, asked for and never read."""
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [
            (":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{server.port}"),
            (":path", f"/api/workflows/{workflow_id}/execute/stream"),
            ("content-type", "application/json"), ("cookie", server.cookie),
        ],
    )  # fmt: skip
    conn.send_data(stream_id, b"{}", end_stream=True)
    await tcp.send_all(conn.data_to_send())
    return tcp


@attrs.frozen
class Growth:
    before: int  # RSS before the run, bytes
    peak: int  # the most RSS seen from its start to AFTER_END_S after its end
    after: int  # RSS AFTER_END_S after its end


async def rss_while(server: served.Served, run: Callable[[], Awaitable[object]]) -> Growth:
    """The server's RSS while `run()` goes on, until its run has ended and AFTER_END_S more,
    from RSS once the server has been idle for SETTLE_S."""
    pid = server.process.pid
    await trio.sleep(SETTLE_S)
    before = peak = procs.rss_bytes(pid)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, procs.rss_bytes(pid))
            await trio.sleep(SAMPLE_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        await run()
        await until_none_running(server.database)
        await trio.sleep(AFTER_END_S)
        nursery.cancel_scope.cancel()
    return Growth(before, peak, procs.rss_bytes(pid))


async def unread_stream(server: served.Served, rounds: int) -> dict[str, Any]:
    workflow_id = await server.create_workflow("Large", *large_workflow())
    request = server.execute(workflow_id)
    opened: list[trio.SocketStream] = []

    async def read_whole() -> None:
        seen = await sse.read_stream(server.port, request)
        if sse.event_name(seen.terminal) != b"complete":
            raise RuntimeError(f"memory: the large run ended {seen.terminal[:500]!r}")

    async def never_read() -> None:
        opened.append(await open_unread_h2(server, workflow_id))

    for _ in range(2):  # warm-up
        await read_whole()
    growths: dict[str, list[Growth]] = {"unread": [], "read_whole": []}
    held = []
    for _ in range(rounds):
        growths["unread"].append(await rss_while(server, never_read))
        await opened.pop().aclose()
        await trio.sleep(SETTLE_S)
        held.append(growths["unread"][-1].after - procs.rss_bytes(server.process.pid))
        growths["read_whole"].append(await rss_while(server, read_whole))
    return {
        "nodes": LARGE_NODES + 1,
        "largest_event_kib": round(
            await trio.to_thread.run_sync(largest_event, server.database) / KIB
        ),
        "rounds": rounds,
        "held_mib": round(statistics.median(held) / MIB, 2),
        **{key: _growth(found) for key, found in growths.items()},
        "ended": await trio.to_thread.run_sync(statuses, server.database),
    }


def _growth(growths: list[Growth]) -> dict[str, float]:
    """Medians over the rounds, in MiB."""
    return {
        "rss_before_mib": round(statistics.median(g.before for g in growths) / MIB, 1),
        "peak_growth_mib": round(statistics.median(g.peak - g.before for g in growths) / MIB, 2),
        "after_growth_mib": round(statistics.median(g.after - g.before for g in growths) / MIB, 2),
    }


async def measure(quick: bool) -> Section:
    async with served.served() as server:
        parked = await parked_runs(server, 200 if quick else 1000)
    async with served.served() as server:
        unread = await unread_stream(server, 1 if quick else 3)
    return section({"parked": parked, "unread_h2": unread})


def section(found: dict[str, dict[str, Any]]) -> Section:
    parked, large = found["parked"], found["unread_h2"]
    unread, read_whole = large["unread"], large["read_whole"]
    cancelled = parked["ended"].get("CANCELLED", 0)
    figures = (
        Figure(f"RSS per streaming run parked in a delay ({parked['runs']} at once)",
               parked["kib_per_run"], "KiB", at_most(MAX_PARKED_KIB),
               f"{cancelled} of {sum(parked['ended'].values())} CANCELLED once closed"),
        Figure("RSS growth, an HTTP/2 stream of large events never read",
               unread["after_growth_mib"], "MiB", at_most(MAX_UNREAD_GROWTH_MIB),
               f"{AFTER_END_S:g} s after its run's end, the stream still open"),
        Figure("  of which given back when that stream closes", large["held_mib"], "MiB", None,
               "what the server held for it"),
        Figure("  the same run read whole: RSS growth", read_whole["after_growth_mib"], "MiB",
               None, "measured the same way"),
        Figure("  peak growth during the run, never read", unread["peak_growth_mib"], "MiB",
               None, f"read whole: {read_whole['peak_growth_mib']} MiB"),
    )  # fmt: skip
    notes = (
        f"parked: RSS {parked['rss_before_mib']} MiB before, {parked['rss_parked_mib']} MiB"
        f" with {parked['runs']} parked; runs by status once closed: {parked['ended']}",
        f"large events: {large['nodes']} nodes, events up to {large['largest_event_kib']} KiB;"
        f" medians of {large['rounds']} round(s), each a run never read then one read whole,"
        f" RSS from {unread['rss_before_mib']} MiB (after 1 s idle) to {AFTER_END_S:g} s after"
        " the run's end, sampled every 20 ms for the peak; growth that the close does not give"
        " back is not held for the stream (memory the process freed but kept: the run read"
        " whole shows how much of it a run leaves anyway); the peak includes what the run"
        " itself allocates for a while (rendering, encoding, the journal), whoever reads;"
        f" runs by status: {large['ended']}",
    )
    return Section("memory", "Goal 6: memory", figures, notes, found)
