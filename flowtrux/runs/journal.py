"""Durable first: run events are stored in group commits and reach subscribers only after.

Runs append records without waiting (`Recorder.emit` is sync, so the engine can report a node's
end while being cancelled). One writer task takes whatever has queued, writes it in one
transaction, then publishes the events it wrote. A run's terminal record waits for its commit.

Nothing queued is dropped while the writer runs:
- while the store cannot answer (locked, unreachable, full), the writer tries again, with growing
  pauses, until it can; streams wait meanwhile, and runs pause before their next node. A batch a
  full store keeps failing is written in smaller transactions (halves, down to single records;
  a run's terminal event always with its status), which a nearly full disk may still take; a
  single record that still does not fit is refused, as below, so that other runs go on;
- when the store refuses a batch (a value JSON cannot carry, a broken constraint), each run's
  records are written on their own, so that only the run holding the refused record is touched:
  its records are then written one at a time, a stand-in takes the place of each one refused,
  and the run is stopped and ends FAILED (see refusals.py). Should even a stand-in be refused,
  the run's live streams are closed and the error is logged.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence

import attrs
import trio

from flowtrux import metrics
from flowtrux.backoff import pauses
from flowtrux.engine.events import NodeCompleted, NodeDelta, NodeEvent, NodeSkipped, NodeStarted
from flowtrux.errors import StoreUnavailable
from flowtrux.runs import payloads
from flowtrux.runs.hub import Hub
from flowtrux.runs.outcome import Outcome
from flowtrux.runs.refusals import as_failed, run_refused, stand_in
from flowtrux.store.executions import (
    Appended,
    ExecutionStore,
    Finish,
    JournalRecord,
    NewEvent,
    NodeLogRecord,
)
from flowtrux.timestamps import utc_now

logger = logging.getLogger(__name__)

MAX_PENDING_RECORDS = 10_000  # past this, runs wait before starting another node
ATTEMPTS_WHEN_FULL = 3  # then a batch is split, and a single unit is refused
OUTAGE_REPORT_S = 30.0


def _ignore(execution_id: str, reason: str) -> None:
    pass


class _GaveUp(Exception):
    """Not even a stand-in of a run's record could be stored."""


@attrs.define(eq=False)
class Journal:
    store: ExecutionStore
    hub: Hub
    on_refused: Callable[[str, str], None] = _ignore  # (execution_id, reason): stop that run
    max_pending: int = MAX_PENDING_RECORDS
    _pending: list[JournalRecord] = attrs.field(factory=list, init=False)
    _has_pending: trio.Event = attrs.field(factory=trio.Event, init=False)
    _next_commit: trio.Event = attrs.field(factory=trio.Event, init=False)
    _room: trio.Event = attrs.field(factory=trio.Event, init=False)
    _asked_to_retry: trio.Event = attrs.field(factory=trio.Event, init=False)
    _refused: dict[str, str] = attrs.field(factory=dict, init=False)  # execution -> why
    _unavailable_since: float | None = attrs.field(default=None, init=False)
    _reported_at: float = attrs.field(default=0.0, init=False)
    _scope: trio.CancelScope = attrs.field(
        factory=lambda: trio.CancelScope(shield=True), init=False
    )

    @property
    def store_available(self) -> bool:
        """False from a write the store could not take until one it took."""
        return self._unavailable_since is None

    def recorder(self, execution_id: str) -> Recorder:
        return Recorder(self, execution_id)

    def append(self, record: JournalRecord) -> trio.Event:
        """Queue `record`; the returned event is set once it is committed and published (or a
        stand-in of it is)."""
        self._pending.append(record)
        self._has_pending.set()
        return self._next_commit

    async def wait_for_room(self) -> None:
        """Wait while the store cannot answer or too many records wait for it. Checkpoints only
        when it waits (it is called where the caller has just checkpointed)."""
        while not self.store_available or len(self._pending) > self.max_pending:
            await self._room.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer. Shielded from outside cancellation so that runs being cancelled can still
        commit their end; `stop()` ends it once they have."""
        with self._scope:
            task_status.started()
            while True:
                await self._has_pending.wait()
                await self._commit_pending()

    def stop(self) -> None:
        """End the writer (at shutdown, once every run has ended); what it holds is logged."""
        self._scope.cancel()
        if self._pending:
            runs = {record.execution_id for record in self._pending}
            logger.error(
                "shutting down with %d journal records of %d runs not stored; a later process"
                " ends those runs INTERRUPTED",
                len(self._pending),
                len(runs),
            )

    async def _commit_pending(self) -> None:
        batch, committed = self._pending, self._next_commit
        self._pending, self._next_commit, self._has_pending = [], trio.Event(), trio.Event()
        self._make_room()
        await self._store(batch)
        committed.set()

    async def _store(self, records: Sequence[JournalRecord]) -> None:
        if self._refused:
            records = [self._as_stored(record) for record in records]
        if not records:
            return
        try:
            appended = await self._write(records)
        except StoreUnavailable as full:  # it stayed full: less at once may fit
            if halves := _halves(records):
                logger.warning("writing %d journal records in smaller transactions", len(records))
                for half in halves:
                    await self._store(half)
            else:  # one unit that does not fit: its run fails, the others go on
                await self._isolate(records, full)
        except Exception as refusal:  # the store refused something in `records`
            traceback.clear_frames(refusal.__traceback__)  # they hold the batch, encoded
            await self._isolate(records, refusal)
        else:
            self._publish(appended)

    async def _write(self, records: Sequence[JournalRecord]) -> Appended:
        """Write `records` in one transaction, trying again while the store cannot answer:
        for ever, unless it is full `ATTEMPTS_WHEN_FULL` times in a row (then StoreUnavailable is
        raised). Raises what the store raised when it refused them."""
        full = 0
        for pause in pauses(0.05, 2.0):
            started = trio.current_time()
            try:
                appended = await self.store.append(records)
            except StoreUnavailable as exc:
                self._note_unavailable(exc, len(records))
                full = full + 1 if exc.full else 0
                if full == ATTEMPTS_WHEN_FULL:
                    raise
            except Exception:
                self._note_available()  # it answered, if only to refuse
                raise
            else:
                self._note_available()
                metrics.commit_records.observe(len(records))
                metrics.commit_seconds.observe(trio.current_time() - started)
                return appended
            with trio.move_on_after(pause):
                await self._asked_to_retry.wait()
            self._asked_to_retry = trio.Event()
        raise AssertionError("pauses() never ends")

    def retry_now(self) -> None:
        """A write the store could not take is tried again now, not after its pause (a new run
        was refused because of it: the store may be back)."""
        self._asked_to_retry.set()

    async def _isolate(self, records: Sequence[JournalRecord], refusal: Exception) -> None:
        by_run: dict[str, list[JournalRecord]] = {}
        for record in records:
            by_run.setdefault(record.execution_id, []).append(record)
        if len(by_run) > 1:
            for run_records in by_run.values():
                await self._store(run_records)
            return
        execution_id = records[0].execution_id
        if execution_id not in self._refused:
            logger.error(
                "execution %s: the store refused a record; the run is stopped", execution_id,
                exc_info=refusal,
            )  # fmt: skip
            self._refused[execution_id] = reason = run_refused(refusal)
            self.on_refused(execution_id, reason)
        try:
            for unit in _units(records):
                await self._store_alone(unit)
        except _GaveUp:
            self._refused.pop(execution_id, None)
            self.hub.close(execution_id)

    async def _store_alone(self, unit: list[JournalRecord]) -> None:
        """Write one unit of a refused run, or stand-ins in its place. Raises _GaveUp."""
        unit = [self._as_stored(record) for record in unit]
        try:
            appended = await self._write(unit)
        except Exception as refusal:
            traceback.clear_frames(refusal.__traceback__)
            replacement = [new for old in unit if (new := stand_in(old, refusal)) is not None]
            if not replacement:
                return
            try:
                appended = await self._write(replacement)
            except Exception as again:
                logger.error(
                    "execution %s: the store refused even a stand-in; its streams end without"
                    " a terminal event and it stays RUNNING until a later process ends it",
                    unit[0].execution_id,
                    exc_info=again,
                )
                raise _GaveUp from None
        self._publish(appended)

    def _as_stored(self, record: JournalRecord) -> JournalRecord:
        """`record`, or the failed end it becomes if its run was refused."""
        reason = self._refused.get(record.execution_id)
        return record if reason is None else as_failed(record, reason)

    def _publish(self, appended: Appended) -> None:
        for event in appended.events:
            self.hub.publish(event)
            if event.terminal:
                self._refused.pop(event.execution_id, None)
        for execution_id in appended.stale:
            logger.warning("execution %s was no longer RUNNING at its end", execution_id)

    def _make_room(self) -> None:
        self._room.set()
        self._room = trio.Event()

    def _note_unavailable(self, exc: StoreUnavailable, waiting: int) -> None:
        now = trio.current_time()
        if self._unavailable_since is None:
            self._unavailable_since = self._reported_at = now
            logger.warning("the store cannot answer (%s); runs wait for it", exc.cause)
        elif now - self._reported_at >= OUTAGE_REPORT_S:
            self._reported_at = now
            logger.warning(
                "the store still cannot answer after %.0f s (%s); %d records wait",
                now - self._unavailable_since,
                exc.cause,
                waiting + len(self._pending),
            )

    def _note_available(self) -> None:
        if self._unavailable_since is not None:
            logger.warning(
                "the store answers again after %.1f s",
                trio.current_time() - self._unavailable_since,
            )
            self._unavailable_since = None
            self._make_room()


def _units(records: Sequence[JournalRecord]) -> list[list[JournalRecord]]:
    """`records` in the smallest parts that may be written apart: a terminal event goes with the
    status that follows it (the status is stored before the event is sent)."""
    units: list[list[JournalRecord]] = []
    for record in records:
        if isinstance(record, Finish) and units and isinstance(units[-1][-1], NewEvent):
            units[-1].append(record)
        else:
            units.append([record])
    return units


def _halves(records: Sequence[JournalRecord]) -> list[list[JournalRecord]]:
    """`records` in two parts, in order, on a boundary of units; [] for a single unit."""
    units = _units(records)
    if len(units) < 2:
        return []
    middle = len(units) // 2
    return [
        [r for unit in units[:middle] for r in unit],
        [r for unit in units[middle:] for r in unit],
    ]


@attrs.define(eq=False)
class Recorder:
    """What one run writes to the journal: its events numbered in order, its node logs, its end."""

    journal: Journal
    execution_id: str
    _seq: int = attrs.field(default=0, init=False)
    _positions: int = attrs.field(default=0, init=False)

    def start(self, workflow_id: str, workflow_name: str, timestamp: str) -> None:
        payload = payloads.start_payload(workflow_id, workflow_name, self.execution_id, timestamp)
        self._event("start", payload)

    def emit(self, event: NodeEvent) -> None:
        """The engine's `emit`: never waits, never raises (values are encoded by the store)."""
        match event:
            case NodeStarted():
                self._event("node_start", payloads.node_start_payload(event))
            case NodeDelta(node_id, delta, attempt):
                self._event("node_delta", {"nodeId": node_id, "delta": delta, "attempt": attempt})
            case NodeCompleted(log):
                seconds = (log.duration_ms or 0) / 1000
                metrics.node_duration(log.node_type, log.status.value).observe(seconds)
                payload = payloads.log_payload(log)
                self._event("node_complete", payload)
                self._log(log.node_id, payload, event_seq=self._seq)
            case NodeSkipped(log):
                self._log(log.node_id, payloads.log_payload(log))

    async def finish(self, outcome: Outcome, duration_ms: int) -> None:
        """Write the terminal status and event in one commit; return once it is published."""
        payload = payloads.terminal_payload(self.execution_id, outcome, duration_ms)
        self._event(outcome.event_name, payload)
        finish = Finish(
            self.execution_id, outcome.status, outcome.output, outcome.error, utc_now(), duration_ms
        )
        await self.journal.append(finish).wait()

    def _event(self, name: str, payload: object) -> None:
        self._seq += 1
        self.journal.append(NewEvent(self.execution_id, self._seq, name, payload))

    def _log(self, node_id: str, payload: object, event_seq: int | None = None) -> None:
        self._positions += 1
        record = NodeLogRecord(self.execution_id, self._positions, node_id, payload, event_seq)
        self.journal.append(record)
