"""The `flowtrux` command as a real process, for tests that need one: signals, exit codes, its
own memory."""

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

RUNNING_ON = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")


def flowtrux(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowtrux", *args]


@asynccontextmanager
async def running(
    command: list[str], env: dict[str, str], cwd: Path, ready: re.Pattern[bytes] = RUNNING_ON
) -> AsyncIterator[tuple[trio.Process, str, bytearray]]:
    """Start `command`, wait until its output matches `ready` (by default hypercorn's 'Running
    on' line); yield the process, its URL and everything it printed (which keeps growing)."""
    output = bytearray()
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                check=False,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )

        serving = trio.Event()

        async def pump() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.receive_some():
                output.extend(chunk)
                if ready.search(output):
                    serving.set()

        nursery.start_soon(pump)
        with trio.fail_after(20):
            await serving.wait()
        match = RUNNING_ON.search(output)
        assert match is not None
        try:
            yield process, match.group(1).decode(), output
        finally:
            if process.returncode is None:
                process.kill()
