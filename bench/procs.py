"""A process and its descendants as /proc tells them: memory, CPU time, and the file-descriptor
limit a thousand connections need."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import trio

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it (a server's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            queue += (int(child) for child in task.read_text().split())
    return found


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` and its descendants (those still running)."""
    total = 0
    for each in descendants(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def raise_fd_limit() -> int:
    """Raise this process's soft file-descriptor limit to its hard one (what its children
    inherit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def stop(process: trio.Process, grace_s: float = 5) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`."""
    process.terminate()
    with trio.move_on_after(grace_s):
        await process.wait()
    process.kill()
    await process.wait()
