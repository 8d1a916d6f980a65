"""Completion callbacks: when a background run ends, its trigger's `callbackUrl` gets the run's
terminal payload (the body of its terminal event) as a POST, signed with HMAC-SHA256 over the
body (`X-FlowTrux-Signature: sha256=<hex>`, the key `FLOWTRUX_CALLBACK_SECRET`), sent through the
guarded client like any request a workflow makes.

A try that fails (no answer, an answer outside 2xx) is made again after a growing pause, at most
`MAX_TRIES` tries in all, unless another could not go otherwise (a blocked address, a URL that
does not parse). Each try is recorded in the execution's history (`callbacks`).
"""

import hashlib
import hmac
import logging
from typing import Any

import attrs
import trio

from flowtrux import strict_json
from flowtrux.outbound.client import Exchange, Outbound, ReadLimit
from flowtrux.outbound.errors import OutboundError
from flowtrux.store.executions import ExecutionStore
from flowtrux.timestamps import to_iso, utc_now

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-FlowTrux-Signature"
MAX_TRIES = 5
FIRST_PAUSE_S = 0.5  # then doubling: 0.5, 1, 2, 4 s
TRY_TIMEOUT_S = 10.0
ANSWER_LIMIT = ReadLimit(64 * 1024, "the most of a callback's answer that is read")


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
            await self.executions.record_callback(
                execution_id,
                {
                    "attempt": attempt,
                    "at": to_iso(utc_now()),
                    "status": status,
                    "error": error,
                    "durationMs": round((trio.current_time() - started) * 1000),
                },
            )
            if error is None or not again:
                return
            if attempt < MAX_TRIES:
                await trio.sleep(FIRST_PAUSE_S * 2 ** (attempt - 1))
        logger.warning("the callback of execution %s failed %d times", execution_id, MAX_TRIES)

    async def _try(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int | None, str | None, bool]:
        """(status, error, whether another try could go otherwise) of one try."""
        try:
            request = self.outbound.build(
                "POST", self.outbound.url(url), headers=headers, content=body
            )
            with trio.move_on_after(TRY_TIMEOUT_S) as timer:
                response, _ = await self.outbound.fetch(request, Exchange(), ANSWER_LIMIT)
        except OutboundError as exc:
            return None, str(exc), exc.retryable
        if timer.cancelled_caught:
            return None, f"no answer within {TRY_TIMEOUT_S:g} s", True
        if not response.is_success:
            return response.status_code, f"the callback answered {response.status_code}", True
        return response.status_code, None, False
