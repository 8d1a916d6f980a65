"""A node's output pieces on their way out as `NodeDelta` events: numbered with their attempt,
and scrubbed of the secrets the node sent, also when a secret comes split across pieces."""

from collections.abc import Callable

import attrs

from flowtrux.engine.events import NodeDelta, NodeEvent
from flowtrux.outbound.secrets import Secrets


@attrs.define
class Deltas:
    node_id: str
    secrets: Secrets
    emit: Callable[[NodeEvent], None]
    attempt: int = 0
    _held: str = ""  # the end of the last piece, which could be the start of a secret

    def send(self, piece: str) -> None:
        safe, self._held = self.secrets.scrub_stream(self._held + piece)
        if safe:
            self.emit(NodeDelta(self.node_id, safe, self.attempt))

    def flush(self) -> None:
        """The attempt has ended: what was held back goes out (it held no whole secret)."""
        if self._held:
            self.emit(NodeDelta(self.node_id, self._held, self.attempt))
            self._held = ""
