"""Completion callbacks: when a background run ends (here, or INTERRUPTED here because its own
process died), its trigger's `callbackUrl` gets the run's terminal payload (the data of its
terminal event) as a POST, signed with HMAC-SHA256 over the body (`X-FlowTrux-Signature:
sha256=<hex>`, the key `FLOWTRUX_CALLBACK_SECRET`), sent through the guarded client like any
request a workflow makes.

A try that fails (no answer, an answer outside 2xx) is made again after a growing pause, at most
`MAX_TRIES` tries in all, unless another could not go otherwise (a blocked address, a URL that
does not parse). Each try is recorded in the execution's history (`callbacks`).
"""

import hashlib
import hmac
import logging
import math
from typing import Any

import attrs
import trio

from flowtrux import strict_json
from flowtrux.errors import StoreUnavailable
from flowtrux.outbound.client import Exchange, Outbound, ReadLimit
from flowtrux.outbound.errors import OutboundError
from flowtrux.runs import payloads
from flowtrux.runs.outcome import Outcome
from flowtrux.runs.run import Run
from flowtrux.store.executions import ExecutionStore
from flowtrux.store.workflows import WorkflowStore
from flowtrux.timestamps import to_iso, utc_now

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-FlowTrux-Signature"
MAX_TRIES = 5
FIRST_PAUSE_S = 0.5  # then doubling: 0.5, 1, 2, 4 s
TRY_TIMEOUT_S = 10.0
ANSWER_LIMIT = ReadLimit(2**63 - 1, "none: a callback's answer is not read")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@attrs.frozen
class Callbacks:
    outbound: Outbound
    executions: ExecutionStore
    secret: str

    async def send(self, execution_id: str, url: str, payload: dict[str, Any]) -> None:
        """Deliver `payload` to `url`, trying up to MAX_TRIES times; never raises (the history
        tells each try)."""
        body = strict_json.utf8(strict_json.dumps(payload))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret, body),
        }
        for attempt in range(1, MAX_TRIES + 1):
            started = trio.current_time()
            status, error, again = await self._try(url, headers, body)
            told = {
                "attempt": attempt,
                "at": to_iso(utc_now()),
                "status": status,
                "error": error,
                "durationMs": round((trio.current_time() - started) * 1000),
            }
            try:
                await self.executions.record_callback(execution_id, told)
            except StoreUnavailable as exc:  # the try was made: its record is what is lost
                logger.warning("could not record callback try %s of %s: %s", told, execution_id,
                               exc.cause)  # fmt: skip
            if error is None or not again:
                return
            if attempt < MAX_TRIES:
                await trio.sleep(FIRST_PAUSE_S * 2 ** (attempt - 1))
        logger.warning("the callback of execution %s failed %d times", execution_id, MAX_TRIES)

    async def _try(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int | None, str | None, bool]:
        """(status, error, whether another try could go otherwise) of one try."""
        status = None
        try:
            request = self.outbound.build(
                "POST", self.outbound.url(url), headers=headers, content=body
            )
            with trio.move_on_after(TRY_TIMEOUT_S):
                async with self.outbound.open(request, Exchange(), ANSWER_LIMIT) as download:
                    status = download.response.status_code  # its body is not needed
        except OutboundError as exc:
            return None, str(exc), exc.retryable
        if status is None:
            return None, f"no answer within {TRY_TIMEOUT_S:g} s", True
        if not 200 <= status < 300:
            return status, f"the callback answered {status}", True
        return status, None, False


@attrs.define(eq=False)
class Caller:
    """The callbacks of one process's runs, each a task in the runs' nursery that never raises.
    At shutdown they get as long as the runs' ends (`hurry`)."""

    outbound: Outbound | None
    executions: ExecutionStore
    workflows: WorkflowStore
    secret: str  # none: no callbacks
    nursery: trio.Nursery
    _going: set[trio.CancelScope] = attrs.field(factory=set, init=False)
    _deadline: float = attrs.field(default=math.inf, init=False)

    def ended(self, run: Run, outcome: Outcome, duration_ms: int) -> None:
        """`run` ended here: call back if it was a background run whose trigger asks to."""
        url = run.graph.trigger.config.get("callbackUrl")
        if run.background and url and self.secret and self.outbound is not None:
            payload = payloads.terminal_payload(run.execution_id, outcome, duration_ms)
            outbound = self.outbound.for_workspace(run.workflow.workspace_id)
            self._start(run.execution_id, url, payload, outbound)

    def interrupted(self, execution_id: str) -> None:
        """Another process's run was ended INTERRUPTED here (that process died): the same."""
        if self.secret and self.outbound is not None:
            self.nursery.start_soon(self._interrupted, execution_id)

    def hurry(self, deadline: float) -> None:
        self._deadline = min(self._deadline, deadline)
        for going in self._going:
            going.deadline = self._deadline

    async def _interrupted(self, execution_id: str) -> None:
        try:
            execution = await self.executions.stored(execution_id)
            if execution is None or not execution.summary.background:
                return
            summary = execution.summary
            workflow = await self.workflows.get(summary.workflow_id)  # as it is now
        except StoreUnavailable as exc:
            logger.warning("no callback for interrupted %s: %s", execution_id, exc.cause)
            return
        url = None if workflow is None else workflow.graph.trigger.config.get("callbackUrl")
        if url and self.outbound is not None:
            outcome = Outcome.interrupted()
            payload = payloads.terminal_payload(execution_id, outcome, summary.duration_ms or 0)
            outbound = self.outbound.for_workspace(summary.workspace_id)
            self._start(execution_id, url, payload, outbound)

    def _start(
        self, execution_id: str, url: str, payload: dict[str, Any], outbound: Outbound
    ) -> None:
        callbacks = Callbacks(outbound, self.executions, self.secret)

        async def call_back() -> None:
            with trio.CancelScope(deadline=self._deadline) as going:
                self._going.add(going)
                try:
                    await callbacks.send(execution_id, url, payload)
                except Exception:  # one callback ends nothing else
                    logger.exception("the callback of execution %s failed", execution_id)
                finally:
                    self._going.discard(going)
            if going.cancelled_caught:
                logger.warning("shutdown: the callback of %s was cut short", execution_id)

        self.nursery.start_soon(call_back, name=f"callback of {execution_id}")
