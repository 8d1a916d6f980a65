"""Durable first: run events are stored in group commits and reach subscribers only after.

Runs append records without waiting (`Recorder.emit` is sync, so the engine can report a node's
end while being cancelled). One writer task takes whatever has queued, writes it in one
transaction, then publishes the events it wrote. A run's terminal record waits for its commit.
"""

from __future__ import annotations

import logging

import attrs
import trio

from flowtrux.engine.events import NodeCompleted, NodeEvent, NodeSkipped, NodeStarted
from flowtrux.runs import payloads
from flowtrux.runs.hub import Hub
from flowtrux.runs.outcome import Outcome
from flowtrux.store.executions import (
    ExecutionStore,
    Finish,
    JournalRecord,
    NodeLogRecord,
    StoredEvent,
)
from flowtrux.timestamps import utc_now

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.05, 0.2, 1.0, 5.0)


@attrs.define(eq=False)
class Journal:
    store: ExecutionStore
    hub: Hub
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S  # then the batch is dropped, loudly
    _pending: list[JournalRecord] = attrs.field(factory=list, init=False)
    _has_pending: trio.Event = attrs.field(factory=trio.Event, init=False)
    _next_commit: trio.Event = attrs.field(factory=trio.Event, init=False)
    _scope: trio.CancelScope = attrs.field(
        factory=lambda: trio.CancelScope(shield=True), init=False
    )

    def recorder(self, execution_id: str, last_seq: int = 0) -> Recorder:
        return Recorder(self, execution_id, last_seq)

    def append(self, record: JournalRecord) -> trio.Event:
        """Queue `record`; the returned event is set once it is committed and published."""
        self._pending.append(record)
        self._has_pending.set()
        return self._next_commit

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer. Shielded from outside cancellation so that runs being cancelled can still
        commit their end; `stop()` ends it once they have."""
        with self._scope:
            task_status.started()
            while True:
                await self._has_pending.wait()
                await self._commit_pending()

    def stop(self) -> None:
        self._scope.cancel()

    async def _commit_pending(self) -> None:
        batch, committed = self._pending, self._next_commit
        self._pending, self._next_commit, self._has_pending = [], trio.Event(), trio.Event()
        events = [record for record in batch if isinstance(record, StoredEvent)]
        if await self._write(batch):
            for event in events:
                self.hub.publish(event)
        else:  # never announce what was not stored: end those runs' live feeds instead
            for execution_id in {event.execution_id for event in events}:
                self.hub.close(execution_id)
        committed.set()

    async def _write(self, batch: list[JournalRecord]) -> bool:
        """Write `batch`, retrying a few times; False when it had to be dropped (logged)."""
        for delay in (*self.retry_delays_s, None):
            try:
                stale = await self.store.append(batch)
                break
            except Exception:
                if delay is None:
                    logger.exception("dropping %d journal records after retries", len(batch))
                    return False
                logger.warning("journal write failed; retrying in %s s", delay, exc_info=True)
                await trio.sleep(delay)
        for execution_id in stale:
            logger.warning("execution %s was no longer RUNNING at its end", execution_id)
        return True


@attrs.define(eq=False)
class Recorder:
    """What one run writes to the journal: its events numbered in order, its node logs, its end."""

    journal: Journal
    execution_id: str
    _seq: int = 0
    _positions: int = attrs.field(default=0, init=False)

    def start(self, workflow_id: str, workflow_name: str, timestamp: str) -> None:
        payload = payloads.start_payload(workflow_id, workflow_name, self.execution_id, timestamp)
        self._event("start", payloads.to_json(payload))

    def emit(self, event: NodeEvent) -> None:
        """The engine's `emit`: never waits."""
        match event:
            case NodeStarted():
                self._event("node_start", payloads.to_json(payloads.node_start_payload(event)))
            case NodeCompleted(log):
                data = payloads.to_json(payloads.log_payload(log))
                self._event("node_complete", data)
                self._log(log.node_id, data)
            case NodeSkipped(log):
                self._log(log.node_id, payloads.to_json(payloads.log_payload(log)))

    async def finish(self, outcome: Outcome, duration_ms: int) -> None:
        """Write the terminal status and event in one commit; return once it is published."""
        payload = payloads.terminal_payload(self.execution_id, outcome, duration_ms)
        self._event(outcome.event_name, payloads.to_json(payload))
        finish = Finish(
            self.execution_id, outcome.status, outcome.output, outcome.error, utc_now(), duration_ms
        )
        await self.journal.append(finish).wait()

    def _event(self, name: str, data: str) -> None:
        self._seq += 1
        self.journal.append(StoredEvent(self.execution_id, self._seq, name, data))

    def _log(self, node_id: str, data: str) -> None:
        self._positions += 1
        self.journal.append(NodeLogRecord(self.execution_id, self._positions, node_id, data))
