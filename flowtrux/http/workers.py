"""`flowtrux serve --workers N`: N processes serving one port and one store.

The parent applies the migrations once, binds a set of sockets for each worker (with
SO_REUSEPORT, so that the kernel spreads connections over them), and starts N worker processes,
spawned, each in a process group of its own, so that a terminal's Ctrl+C reaches the parent
alone. Each worker serves as `flowtrux serve` does, with its own run manager, lease and outbound
clients: it owns the runs it starts; Stop and `/events` reach them from any worker through the
store. The parent passes each SIGINT or SIGTERM on to every worker as SIGTERM (the first drains
their runs, a second stops waiting for the store) and returns once all have exited. A worker that
exits on its own, without a signal, is started again (its runs are ended INTERRUPTED by the
lease rules; connections the kernel gave its sockets meanwhile wait for it).
"""

from __future__ import annotations

import copy
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import attrs
import trio
from hypercorn.config import Config, Sockets
from prometheus_client import multiprocess

from flowtrux.config import Settings
from flowtrux.http.app import create_app
from flowtrux.http.serve import graceful_shutdown, hypercorn_config, serve
from flowtrux.logs import configure_logging
from flowtrux.metrics import MULTIPROCESS_DIR
from flowtrux.store.migrations import apply_migrations

logger = logging.getLogger(__name__)

MIN_LIFETIME_S = 5.0  # a worker that fails sooner is not started again: it would fail again
PR_SET_PDEATHSIG = 1  # from linux/prctl.h


@attrs.frozen
class WorkerPlan:
    """What a worker needs to serve (it is pickled into the spawned process)."""

    settings: Settings
    config_file: Path | None
    bind: str | None
    sockets: Sockets


def serve_workers(settings: Settings, config_file: Path | None, bind: str | None, n: int) -> int:
    """Serve with `n` worker processes until a signal; 0, or the exit code of a worker that
    failed."""
    apply_migrations(settings.database_url)  # once, before workers open the store together
    sockets = sockets_per_worker(hypercorn_config(config_file, bind, settings), n)
    plans = [WorkerPlan(settings, config_file, bind, own) for own in sockets]
    supervisor = _Supervisor(plans)
    signal.signal(signal.SIGINT, supervisor.pass_on)
    signal.signal(signal.SIGTERM, supervisor.pass_on)
    with tempfile.TemporaryDirectory(prefix="flowtrux-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR] = metrics_dir  # the workers add up their metrics there
        try:
            return supervisor.run()
        finally:
            for own in sockets:
                for sock in (*own.secure_sockets, *own.insecure_sockets):
                    sock.close()


def sockets_per_worker(config: Config, n: int) -> list[Sockets]:
    """A set of listening sockets for each of `n` workers, bound with SO_REUSEPORT to the same
    addresses, so that the kernel spreads new connections over the workers. With one set shared,
    the worker that happened to accept first took them: 8 keep-alive clients all went to one of
    two workers, which served no more than one. Unix sockets and inherited descriptors cannot be
    bound twice: their one set is shared."""
    config.workers = n  # hypercorn binds with SO_REUSEPORT then
    first = config.create_sockets()
    if any(bind.startswith(("unix:", "fd://")) for bind in (*config.bind, *config.insecure_bind)):
        return [first] * n
    again = copy.copy(config)
    if config.ssl_enabled:
        again.bind = [_address(sock) for sock in first.secure_sockets]
        again.insecure_bind = [_address(sock) for sock in first.insecure_sockets]
    else:
        again.bind = [_address(sock) for sock in first.insecure_sockets]
    return [first, *(again.create_sockets() for _ in range(n - 1))]


def _address(sock: socket.socket) -> str:
    """Where `sock` is bound, as hypercorn's `bind` says it (the port a bind to 0 was given)."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


@attrs.define
class _Supervisor:
    plans: list[WorkerPlan]  # one a worker
    _context: multiprocessing.context.SpawnContext = attrs.field(
        factory=lambda: multiprocessing.get_context("spawn"), init=False
    )
    _workers: list[tuple[BaseProcess, float]] = attrs.field(factory=list, init=False)
    _stopping: bool = attrs.field(default=False, init=False)
    _ended: set[BaseProcess] = attrs.field(factory=set, init=False)

    def run(self) -> int:
        self._workers = [self._start(number) for number in range(len(self.plans))]
        exit_code = 0
        while alive := [process for process, _ in self._workers if process.exitcode is None]:
            wait([process.sentinel for process in alive])
            for number, (process, started) in enumerate(self._workers):
                if process.exitcode is None or process in self._ended:
                    continue
                self._ended.add(process)
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                if self._stopping:
                    exit_code = exit_code or max(process.exitcode, 0)  # a signal's: not a failure
                    continue
                failed_to_start = (
                    process.exitcode > 0 and time.monotonic() - started < MIN_LIFETIME_S
                )
                if failed_to_start:  # a bad setting, say: starting it again would fail again
                    logger.error("worker %d failed as it started: stopping the others", number)
                    exit_code = process.exitcode
                    self.pass_on(signal.SIGTERM, None)
                    continue
                logger.error("worker %d exited (%s): starting it again", number, process.exitcode)
                self._workers[number] = self._start(number)
                if self._stopping:  # a signal came while it started: it gets its SIGTERM too
                    self.pass_on(signal.SIGTERM, None)
        return exit_code

    def pass_on(self, signum: int, frame: FrameType | None) -> None:
        """A signal for the server: every worker gets SIGTERM."""
        self._stopping = True
        for process, _ in self._workers:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    def _start(self, number: int) -> tuple[BaseProcess, float]:
        process = self._context.Process(
            target=run_worker,
            args=(self.plans[number], os.getpid()),
            name=f"flowtrux-worker-{number}",
        )
        process.start()
        return process, time.monotonic()


def run_worker(plan: WorkerPlan, parent_pid: int) -> None:
    """A worker process: serve until SIGTERM (from the parent, or from the kernel when the
    parent dies), draining runs first."""
    os.setpgrp()  # a terminal's Ctrl+C goes to the parent, which passes it on once
    _end_with(parent_pid)
    configure_logging(plan.settings.log_level)
    trio.run(_serve, plan)


def _end_with(parent_pid: int) -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (Linux), so that a
    parent killed with SIGKILL leaves no worker serving on its own."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before that took hold
        raise SystemExit(0)


async def _serve(plan: WorkerPlan) -> None:
    app = create_app(plan.settings)
    config = hypercorn_config(plan.config_file, plan.bind, plan.settings)
    for sock in (*plan.sockets.secure_sockets, *plan.sockets.insecure_sockets):
        sock.listen(config.backlog)  # as hypercorn's own workers do
    async with graceful_shutdown(app) as shutdown_trigger:
        await serve(app, config, shutdown_trigger=shutdown_trigger, sockets=plan.sockets)
