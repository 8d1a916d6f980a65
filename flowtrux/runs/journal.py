"""Durable first: run events are stored in group commits and reach subscribers only after.

Runs append records without waiting (`Recorder.emit` is sync, so the engine can report a node's
end while being cancelled). One writer task takes whatever has queued, writes it in one
transaction, then publishes the events it wrote. A run's terminal record waits for its commit.

Nothing queued is dropped while the writer runs:
- while the store cannot answer (locked, unreachable, full), the writer tries again, with growing
  pauses, until it can; streams wait meanwhile, and runs pause before their next node;
- when the store refuses a batch (a value JSON cannot carry, a broken constraint), each run's
  records are written on their own, so that only the run holding the refused record loses them:
  it is stopped, and its end is stored as FAILED with an error that says why. Should even that
  end be refused, its live streams are closed and the error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs
import trio

from flowtrux.backoff import pauses
from flowtrux.engine.events import NodeCompleted, NodeEvent, NodeSkipped, NodeStarted
from flowtrux.engine.states import RunStatus
from flowtrux.errors import StoreUnavailable
from flowtrux.runs import payloads
from flowtrux.runs.hub import Hub
from flowtrux.runs.outcome import Outcome
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
OUTAGE_REPORT_S = 30.0


def _ignore(execution_id: str, reason: str) -> None:
    pass


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
    _last_seq: dict[str, int] = attrs.field(factory=dict, init=False)  # by live execution
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

    def recorder(self, execution_id: str, last_seq: int = 0) -> Recorder:
        self._last_seq.setdefault(execution_id, last_seq)
        return Recorder(self, execution_id, last_seq)

    def append(self, record: JournalRecord) -> trio.Event:
        """Queue `record`; the returned event is set once it is committed and published (or,
        if the store refused it, once its run's failed end is)."""
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
        await self._store(self._apart_from_refused(batch))
        committed.set()

    async def _store(self, records: Sequence[JournalRecord]) -> None:
        if not records:
            return
        try:
            appended = await self._write(records)
        except Exception as exc:  # the store refused something in `records`
            await self._isolate(records, exc)
        else:
            self._publish(appended)

    async def _write(self, records: Sequence[JournalRecord]) -> Appended:
        """Write `records` in one transaction, trying again for as long as the store cannot
        answer. Raises what the store raised when it refused them."""
        for pause in pauses(0.05, 2.0):
            try:
                appended = await self.store.append(records)
            except StoreUnavailable as exc:
                self._note_unavailable(exc, len(records))
            except Exception:
                self._note_available()  # it answered, if only to refuse
                raise
            else:
                self._note_available()
                return appended
            await trio.sleep(pause)
        raise AssertionError("pauses() never ends")

    async def _isolate(self, records: Sequence[JournalRecord], refusal: Exception) -> None:
        by_run: dict[str, list[JournalRecord]] = {}
        for record in records:
            by_run.setdefault(record.execution_id, []).append(record)
        if len(by_run) == 1:
            await self._refuse(records, refusal)
            return
        for run_records in by_run.values():
            await self._store(run_records)

    async def _refuse(self, records: Sequence[JournalRecord], refusal: Exception) -> None:
        """The store refused `records`, all of one run: stop it, and store its end as FAILED."""
        execution_id = records[0].execution_id
        if execution_id in self._refused:
            logger.error(
                "execution %s: the store refused even its failed end; its streams end without"
                " a terminal event and it stays RUNNING until a later process ends it",
                execution_id,
                exc_info=refusal,
            )
            self._forget(execution_id)
            self.hub.close(execution_id)
            return
        logger.error(
            "execution %s: the store refused its records; the run is stopped", execution_id,
            exc_info=refusal,
        )  # fmt: skip
        reason = f"FlowTrux could not store this run's events ({_describe(refusal)})"
        self._refused[execution_id] = reason
        self.on_refused(execution_id, reason)
        await self._store(self._apart_from_refused(records))  # its end, if it came, as FAILED

    def _apart_from_refused(self, records: Sequence[JournalRecord]) -> list[JournalRecord]:
        """`records` without those of refused runs, whose end becomes a failed end."""
        if not self._refused:
            return list(records)
        kept: list[JournalRecord] = []
        for record in records:
            reason = self._refused.get(record.execution_id)
            if reason is None:
                kept.append(record)
            elif isinstance(record, Finish):
                kept.extend(self._failed_end(record, reason))
        return kept

    def _failed_end(self, finish: Finish, reason: str) -> list[JournalRecord]:
        outcome = Outcome.failed(reason)
        seq = self._last_seq.get(finish.execution_id, 0) + 1
        payload = payloads.terminal_payload(finish.execution_id, outcome, finish.duration_ms)
        failed = attrs.evolve(finish, status=RunStatus.FAILED, output=None, error=reason)
        return [NewEvent(finish.execution_id, seq, outcome.event_name, payload), failed]

    def _publish(self, appended: Appended) -> None:
        for event in appended.events:
            self._last_seq[event.execution_id] = event.seq
            self.hub.publish(event)
            if event.terminal:
                self._forget(event.execution_id)
        for execution_id in appended.stale:
            logger.warning("execution %s was no longer RUNNING at its end", execution_id)

    def _forget(self, execution_id: str) -> None:
        self._last_seq.pop(execution_id, None)
        self._refused.pop(execution_id, None)

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


def _describe(refusal: Exception) -> str:
    text = f"{type(refusal).__name__}: {refusal}"
    return text[:300].encode("utf-8", "backslashreplace").decode()


@attrs.define(eq=False)
class Recorder:
    """What one run writes to the journal: its events numbered in order, its node logs, its end."""

    journal: Journal
    execution_id: str
    _seq: int = 0
    _positions: int = attrs.field(default=0, init=False)

    def start(self, workflow_id: str, workflow_name: str, timestamp: str) -> None:
        payload = payloads.start_payload(workflow_id, workflow_name, self.execution_id, timestamp)
        self._event("start", payload)

    def emit(self, event: NodeEvent) -> None:
        """The engine's `emit`: never waits, never raises (values are encoded by the store)."""
        match event:
            case NodeStarted():
                self._event("node_start", payloads.node_start_payload(event))
            case NodeCompleted(log):
                payload = payloads.log_payload(log)
                self._event("node_complete", payload)
                self._log(log.node_id, payload)
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

    def _log(self, node_id: str, payload: object) -> None:
        self._positions += 1
        self.journal.append(NodeLogRecord(self.execution_id, self._positions, node_id, payload))
