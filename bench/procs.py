"""A process and its descendants as /proc tells them: memory, CPU time, and the file-descriptor
limit a thousand connections need."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import trio

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TCP_ESTABLISHED = "01"  # /proc/net/tcp's state column


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


def own_cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` alone (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time of `pid` and of each of its descendants still running, each alone."""
    return {each: own_cpu_seconds(each) for each in descendants(pid)}


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU time of the machine, every core added up, from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


def connections(pids: list[int], port: int) -> list[int]:
    """How many established TCP connections to local `port` each of `pids` holds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == TCP_ESTABLISHED and int(fields[1].split(":")[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            links = []
        counts.append(sum(link in inodes for link in links))
    return counts


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
