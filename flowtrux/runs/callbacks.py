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
from flowtrux.errors import StoreUnavailable
from flowtrux.outbound.client import Exchange, Outbound, ReadLimit
from flowtrux.outbound.errors import OutboundError
from flowtrux.store.executions import ExecutionStore
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
