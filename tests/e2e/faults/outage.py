"""The store failing under a running server, for real, and what the service must still do
meanwhile.

Two faults of the SQLite file itself: its write lock held by another connection (tests/faults.py:
every write waits, then the server says the store cannot answer), and the file and its WAL made
immutable (`chattr +i`), so that every write fails with an I/O error while reads go on, as on a
disk remounted read-only under the server. Both end when the block does.
"""

import math
import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import attrs
import httpx
import trio

from flowtrux.store.sqlite import LOCK_WAIT_S
from tests.e2e.faults.invariants import Verdict
from tests.faults import write_lock_held

HEALTHZ_WITHIN_S = 1.0  # how long /healthz may take while the store fails
# How long a call that needs the store may take to be answered while it fails: the 5 s a
# locked store is waited for (README), and some slack for a loaded machine.
ANSWER_WITHIN_S = LOCK_WAIT_S + 2
PROBE_EVERY_S = 0.5


@asynccontextmanager
async def locked(database: Path) -> AsyncIterator[None]:
    """Another connection holds the write lock of `database`."""
    with write_lock_held(database):
        yield


def _immutable_files(database: Path) -> list[Path]:
    return [database, database.with_name(database.name + "-wal")]


@asynccontextmanager
async def read_only(database: Path) -> AsyncIterator[None]:
    """`database` and its WAL immutable: writes fail (EPERM, an SQLite I/O error), reads work."""
    files = [str(path) for path in _immutable_files(database)]
    await trio.run_process(["chattr", "+i", *files])
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):  # never leave the files immutable
            await trio.run_process(["chattr", "-i", *files])


async def why_files_cannot_be_made_read_only(scratch: Path) -> str | None:
    """None when `chattr +i` makes a file refuse writes here (it needs CAP_LINUX_IMMUTABLE and a
    file system that has the flag); else why not."""
    return await trio.to_thread.run_sync(_why_not_immutable, scratch / "immutable-probe")


def _why_not_immutable(probe: Path) -> str | None:
    probe.write_bytes(b"x")
    done = subprocess.run(["chattr", "+i", str(probe)], check=False, capture_output=True)
    if done.returncode != 0:
        return f"chattr +i failed: {done.stderr.decode(errors='replace').strip()}"
    try:
        with probe.open("ab") as opened:
            opened.write(b"y")
        return "a file made immutable still took a write"
    except PermissionError:
        return None
    finally:
        subprocess.run(["chattr", "-i", str(probe)], check=True)


@attrs.define
class Window:
    """When the store failed: from `began` until it was back (`back`, once it is)."""

    began: float
    back: float = math.inf


async def probe_through(
    fault: AbstractAsyncContextManager[None],
    client: httpx.AsyncClient,
    workflow_id: str,
    verdict: Verdict,
    name: str,
    within_s: float,
) -> Window:
    """Hold `fault` for `within_s` and check the service meanwhile: /healthz answers 200 within
    HEALTHZ_WITHIN_S each time, the history can be listed, /readyz says 503 before the store is
    back, and each new run asked (one every PROBE_EVERY_S) is answered within ANSWER_WITHIN_S:
    503 `store_unavailable` with a Retry-After while the store fails, anything after. What is
    wrong goes into `verdict`, naming the fault. Returns the fault's window."""
    readiness: list[int] = []

    def problem(what: str) -> None:
        verdict.add(None, f"while the store was {name}: {what}")

    async def try_a_new_run(window: Window) -> None:
        sent = trio.current_time()
        with trio.move_on_after(2 * ANSWER_WITHIN_S) as unanswered:
            answer = await client.post(f"/api/workflows/{workflow_id}/execute", json={})
        took, into = trio.current_time() - sent, sent - window.began
        if unanswered.cancelled_caught:
            problem(f"a new run asked {into:.1f} s into the fault had no answer in {took:.1f} s")
            return
        if took > ANSWER_WITHIN_S:
            problem(
                f"a new run asked {into:.1f} s into the fault was answered"
                f" {answer.status_code} only {took:.1f} s later (a locked store is waited for"
                f" up to {LOCK_WAIT_S:g} s a call): {answer.text[:120]}"
            )
        if trio.current_time() >= window.back:
            return  # the store was back: a run may start
        code = answer.json().get("code") if answer.status_code != 200 else None
        if (answer.status_code, code) != (503, "store_unavailable"):
            problem(f"a new run was answered {answer.status_code} {answer.text[:300]}")
        elif not answer.headers.get("retry-after", "").isdigit():
            problem(f"a 503 without a Retry-After: {dict(answer.headers)}")

    async with trio.open_nursery() as new_runs:  # each is answered in its own time
        began = trio.current_time()  # the fault may hold before `fault` has returned
        async with fault:
            window = Window(began)
            while trio.current_time() < window.began + within_s:
                new_runs.start_soon(try_a_new_run, window)
                with trio.move_on_after(HEALTHZ_WITHIN_S) as late:
                    health = await client.get("/healthz")
                if late.cancelled_caught or health.status_code != 200:
                    problem(f"/healthz did not answer 200 within {HEALTHZ_WITHIN_S} s")
                listed = await client.get("/api/executions", params={"limit": "5"})
                if listed.status_code != 200:
                    problem(f"the history answered {listed.status_code} {listed.text[:300]}")
                readiness.append((await client.get("/readyz")).status_code)
                await trio.sleep(PROBE_EVERY_S)
        window.back = trio.current_time()
    if 503 not in readiness:
        problem(
            f"/readyz never said 503 in {within_s:g} s of writes failing (it said"
            f" {sorted(set(readiness))})"
        )
    return window


async def until_ready(client: httpx.AsyncClient, verdict: Verdict, within_s: float) -> None:
    """/readyz says 200 again within `within_s` of the store's return."""
    deadline = trio.current_time() + within_s
    while (await client.get("/readyz")).status_code != 200:
        if trio.current_time() > deadline:
            verdict.add(None, f"/readyz still not 200 {within_s} s after the store came back")
            return
        await trio.sleep(0.05)
