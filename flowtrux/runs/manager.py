"""The run manager: runs belong to the app, not to the request that started them.

A request starts a run and subscribes to it; when it goes away it calls `detach`. Each run is a
task in the manager's nursery that decides its outcome exactly once, in its own `finally`, and
never lets an exception out: one failing run cannot take the server down.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import attrs
import trio

from flowtrux import metrics
from flowtrux.engine.nodes.trigger import trigger_data
from flowtrux.engine.scheduler import Limits, RunFailed, execute
from flowtrux.engine.states import RUN_TRANSITIONS, RunStatus, transition
from flowtrux.errors import ShuttingDown, StoreUnavailable, TooManyRequests
from flowtrux.ids import new_id
from flowtrux.outbound.client import Outbound
from flowtrux.runs.callbacks import Caller
from flowtrux.runs.feed import Feed
from flowtrux.runs.hub import SUBSCRIBER_BYTES, Hub
from flowtrux.runs.journal import Journal, Recorder
from flowtrux.runs.leases import end_if_orphaned, follow_stop_requests, keep_lease
from flowtrux.runs.outcome import CANCELLED_BY_SHUTDOWN, CANCELLED_BY_USER, Outcome
from flowtrux.runs.retention import keep_pruning
from flowtrux.runs.run import Run
from flowtrux.store.executions import Backgrounded, ExecutionStore, NewExecution
from flowtrux.store.processes import ProcessStore
from flowtrux.store.store import Store
from flowtrux.store.workflows import Workflow
from flowtrux.timestamps import to_iso, utc_now

logger = logging.getLogger(__name__)


@attrs.frozen
class RunSettings:
    limits: Limits = attrs.field(factory=Limits)
    max_runs_per_workspace: int = 100
    subscriber_bytes: int = SUBSCRIBER_BYTES
    shutdown_finish_s: float = 10.0  # at shutdown, how long a run's end may wait for the store
    lease_s: float = 20.0
    retention_days: float = 30.0
    callback_secret: str = ""  # completion callbacks are off without it


class Stopping(enum.Enum):
    """What the Stop button did."""

    CANCELLING = "CANCELLING"  # cancelled here, or asked of the live process that runs it
    INTERRUPTED = "INTERRUPTED"  # its process is gone: it has just been ended
    ENDED = "ENDED"  # it had already ended: nothing to do


@attrs.define(eq=False)
class RunManager:
    executions: ExecutionStore
    processes: ProcessStore
    journal: Journal
    hub: Hub
    settings: RunSettings
    process_id: str
    outbound: Outbound | None  # the HTTP clients of `http` and `agent` nodes
    callbacks: Caller  # background runs' completion callbacks
    _nursery: trio.Nursery
    _runs: dict[str, Run] = attrs.field(factory=dict, init=False)
    _some_runs: trio.Event = attrs.field(factory=trio.Event, init=False)  # set while it has runs
    _closing: bool = attrs.field(default=False, init=False)
    _ends_wait_until: float = attrs.field(default=math.inf, init=False)  # for the store

    async def start(
        self,
        workflow: Workflow,
        body: dict[str, Any],
        *,
        started_by: str | None,
        trigger: str = "manual",
        background: bool = False,
    ) -> Run:
        """Store a RUNNING execution (`trigger`: how it was started, `manual` or `webhook`) and
        start running it; with `background`, as a background run from its first row (nobody
        waits for it: the history says so before the caller answers).

        Raises ShuttingDown (also when the shutdown begins while its row waits for the store),
        TooManyRequests, StoreUnavailable (also while the journal cannot store what runs
        already send).
        """
        self._check_capacity(workflow.workspace_id)
        if not self.journal.store_available:
            self.journal.retry_now()  # the store may be back: the next run need not wait 2 s
            raise StoreUnavailable("the journal is waiting for the store")
        run = Run(new_id("exec"), workflow, workflow.graph, body, background=background)
        self._runs[run.execution_id] = run  # holds the slot while the row is written
        self._some_runs.set()
        try:
            with run.starting:
                await self.executions.create(
                    NewExecution(
                        run.execution_id,
                        workflow.id,
                        workflow.workspace_id,
                        workflow.name,
                        trigger,
                        trigger_data(run.graph.trigger.config.get("staticData", {}), body),
                        started_by,
                        self.process_id,
                        utc_now(),
                        background,
                    )
                )
        except BaseException:
            self._never_started(run)
            raise
        if run.starting.cancelled_caught:  # the shutdown began: its row was not written
            self._never_started(run)
            raise ShuttingDown()
        metrics.runs_started.labels(trigger).inc()
        self.hub.open(run.execution_id)
        self._nursery.start_soon(self._drive, run, name=f"run {run.execution_id}")
        return run

    def _never_started(self, run: Run) -> None:
        self._forget(run)
        run.finished.set()  # nothing, `drain()` included, waits for it

    def _check_capacity(self, workspace_id: str) -> None:
        if self._closing:
            raise ShuttingDown()
        limit = self.settings.max_runs_per_workspace
        going = sum(run.workflow.workspace_id == workspace_id for run in self._runs.values())
        if going >= limit:
            raise TooManyRequests(
                f"This workspace already has {limit} runs going; wait for one to end.", 1
            )

    def subscribe(self, execution_id: str, after: int = 0) -> Feed:
        """The events of `execution_id` after sequence number `after`, stored then live."""
        return Feed(execution_id, self.hub, self.executions, self.process_id, after)

    def detach(self, run: Run) -> None:
        """The request that started `run` went away: cancel the run, unless its trigger says
        `continueOnDisconnect`, in which case it goes on in the background."""
        if run.status is not RunStatus.RUNNING or run.background:
            return
        if run.continue_on_disconnect:
            self.background(run)
        else:
            run.cancel(CANCELLED_BY_USER)

    def background(self, run: Run) -> None:
        """`run` goes on with nobody waiting for it (`background: true` in the history)."""
        if run.status is RunStatus.RUNNING and not run.background:
            run.background = True
            self.journal.append(Backgrounded(run.execution_id))

    async def stop(self, execution_id: str, asked_at: datetime | None = None) -> Stopping:
        """The Stop button, wherever the run is. A run of this process is cancelled. A RUNNING
        run of a process whose lease lapsed, or of this one that no longer runs it, is ended
        INTERRUPTED now. A run of another process is stopped by that process when it next
        renews its lease, or, should it be gone, ended INTERRUPTED once its lease lapses.

        Raises StoreUnavailable."""
        run = self._runs.get(execution_id)
        if run is not None:
            if run.status is not RunStatus.RUNNING:
                return Stopping.ENDED
            if run.stop_pressed_at is None:  # its latency counts from the Stop, wherever asked
                waited_s = 0.0 if asked_at is None else (utc_now() - asked_at).total_seconds()
                run.stop_pressed_at = trio.current_time() - max(waited_s, 0.0)
            run.cancel(CANCELLED_BY_USER)
            return Stopping.CANCELLING
        here, lease_s = self.process_id, self.settings.lease_s
        if await end_if_orphaned(self.processes, execution_id, lease_s, abandoned_by=here):
            self.callbacks.interrupted(execution_id)
            return Stopping.INTERRUPTED
        if await self.processes.request_stop(execution_id):
            return Stopping.CANCELLING
        return Stopping.ENDED

    def running(self) -> list[Run]:
        return list(self._runs.values())

    async def wait_for_runs(self) -> None:
        """Return once this process has a run (at once if it has)."""
        await self._some_runs.wait()

    def _forget(self, run: Run) -> None:
        del self._runs[run.execution_id]
        if not self._runs:
            self._some_runs = trio.Event()

    def fail(self, execution_id: str, reason: str) -> None:
        """The run cannot go on (the store refused its records): it ends FAILED."""
        run = self._runs.get(execution_id)
        if run is not None:
            run.fail(reason)

    def cancel_all(self) -> None:
        """Start no new run and cancel the current ones (shutdown). A run's end now waits for
        the store only `shutdown_finish_s`."""
        self._closing = True
        self._wait_for_ends_until(trio.current_time() + self.settings.shutdown_finish_s)
        for run in self.running():
            run.cancel(CANCELLED_BY_SHUTDOWN)

    def hurry(self) -> None:
        """Stop waiting for the store (a second signal): runs whose end is not stored yet are
        left for the next process to end INTERRUPTED."""
        self.cancel_all()
        self._wait_for_ends_until(trio.current_time())

    def _wait_for_ends_until(self, deadline: float) -> None:
        self._ends_wait_until = min(self._ends_wait_until, deadline)
        for run in self.running():
            if run.ending is not None:
                run.ending.deadline = self._ends_wait_until
        self.callbacks.hurry(self._ends_wait_until)  # callbacks get as long as the runs' ends

    async def drain(self) -> None:
        """Start no new run, cancel the current ones, and wait until each has ended (each sends
        its `cancelled` event, so open streams end properly before the server closes them)."""
        self.cancel_all()
        for run in self.running():
            await run.finished.wait()

    async def _drive(self, run: Run) -> None:
        recorder = self.journal.recorder(run.execution_id)
        started = trio.current_time()
        recorder.start(run.workflow.id, run.workflow.name, to_iso(utc_now()))
        outcome = None
        try:
            with run.cancel_scope:
                output = await execute(
                    run.graph,
                    run.body,
                    recorder.emit,
                    self.settings.limits,
                    self.journal.wait_for_room,
                    self._outbound_of(run),
                )
                outcome = Outcome.completed(output)
        except RunFailed as exc:
            outcome = Outcome.failed(str(exc))
        except Exception:
            logger.exception("run %s crashed", run.execution_id)
            outcome = Outcome.failed(
                "FlowTrux failed while running the workflow (see the server log)"
            )
        finally:
            # The one place a run's outcome is decided, written and announced.
            if run.failure is not None:
                outcome = Outcome.failed(run.failure)
            outcome = outcome or Outcome.cancelled(run.cancel_reason or CANCELLED_BY_SHUTDOWN)
            await self._finish(run, recorder, outcome, trio.current_time() - started)

    def _outbound_of(self, run: Run) -> Outbound | None:
        if self.outbound is None:
            return None
        return self.outbound.for_workspace(run.workflow.workspace_id)

    async def _finish(
        self, run: Run, recorder: Recorder, outcome: Outcome, elapsed_s: float
    ) -> None:
        """Store the end and publish it, waiting for the store as long as it takes, except at
        shutdown: then the next process ends the run INTERRUPTED."""
        run.status = transition(RUN_TRANSITIONS, run.status, outcome.status)
        with trio.CancelScope(shield=True, deadline=self._ends_wait_until) as ending:
            run.ending = ending
            await recorder.finish(outcome, round(elapsed_s * 1000))
        if not ending.cancelled_caught:
            metrics.runs_ended.labels(outcome.status.value).inc()
            if outcome.is_cancelled and run.stop_pressed_at is not None:
                metrics.stop_seconds.observe(trio.current_time() - run.stop_pressed_at)
            self.callbacks.ended(run, outcome, round(elapsed_s * 1000))
        if ending.cancelled_caught:
            logger.error(
                "run %s: its end could not be stored before shutdown; a later process ends it"
                " INTERRUPTED",
                run.execution_id,
            )
            self.hub.close(run.execution_id)  # its streams end; they cannot get its end
        self._forget(run)
        run.finished.set()


@asynccontextmanager
async def open_run_manager(
    store: Store, settings: RunSettings, outbound: Outbound | None = None
) -> AsyncIterator[RunManager]:
    """The app's runs: the journal's writer, the process lease, and one nursery for all runs;
    their nodes send HTTP requests with `outbound`.

    On exit every run is cancelled and has stored its end before the writer stops.
    """
    hub = Hub(settings.subscriber_bytes)
    journal = Journal(store.executions, hub)
    process_id = new_id("proc")
    async with trio.open_nursery() as services:
        await services.start(journal.run)
        try:
            async with trio.open_nursery() as runs:
                caller = Caller(
                    outbound, store.executions, store.workflows, settings.callback_secret, runs
                )
                manager = RunManager(
                    store.executions,
                    store.processes,
                    journal,
                    hub,
                    settings,
                    process_id,
                    outbound,
                    caller,
                    runs,
                )
                journal.on_refused = manager.fail
                await services.start(
                    keep_lease, store.processes, process_id, settings.lease_s, caller.interrupted
                )
                await services.start(keep_pruning, store, settings.retention_days)
                await services.start(
                    follow_stop_requests,
                    store.processes,
                    process_id,
                    manager.wait_for_runs,
                    manager.stop,
                )
                try:
                    yield manager
                finally:
                    manager.cancel_all()  # the nursery then waits for each run's end
        finally:
            journal.stop()
            services.cancel_scope.cancel()
