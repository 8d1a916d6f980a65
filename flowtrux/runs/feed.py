"""A subscriber's view of one execution: every event after a sequence number, in order, once.

Stored events come first, then live ones. The live channel is registered *before* the store is
read, and fan-out happens only after commit, so no event can fall between the two; duplicates are
dropped by sequence number. A feed the hub dropped for lagging simply catches up again.
"""

from collections import deque

import attrs
import trio

from flowtrux.runs.hub import Hub
from flowtrux.store.executions import ExecutionStore, StoredEvent


@attrs.define(eq=False)
class Feed:
    execution_id: str
    hub: Hub
    store: ExecutionStore
    last_seq: int = 0
    _live: trio.MemoryReceiveChannel[StoredEvent] | None = attrs.field(default=None, init=False)
    _backlog: deque[StoredEvent] = attrs.field(factory=deque, init=False)
    _ended: bool = attrs.field(default=False, init=False)

    async def receive(self) -> StoredEvent:
        """The next event. Raises EndOfChannel after the terminal event, or when the run is
        neither live here nor finished in the store. Checkpoints."""
        while not self._ended:
            event = await self._next()
            if event.seq > self.last_seq:
                self.last_seq = event.seq
                self._ended = event.terminal
                return event
        raise trio.EndOfChannel

    def close(self) -> None:
        if self._live is not None:
            self._live.close()

    async def _next(self) -> StoredEvent:
        while True:
            if self._backlog:
                return self._backlog.popleft()
            if self._live is not None:
                try:
                    return await self._live.receive()
                except trio.EndOfChannel:
                    self._live = None  # dropped for lagging, or the run ended
            await self._catch_up()

    async def _catch_up(self) -> None:
        live = self.hub.subscribe(self.execution_id)
        try:
            stored = await self.store.events_after(self.execution_id, self.last_seq)
        except BaseException:
            if live is not None:
                live.close()  # a catch-up cut short starts over: it must not skip to live events
            raise
        self._live = live
        if not stored and live is None:
            self._ended = True
            raise trio.EndOfChannel
        self._backlog.extend(stored)
