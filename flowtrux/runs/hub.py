"""Fan-out of committed events to the subscribers of live runs.

Each subscriber has a bounded channel. Publishing never waits: a subscriber whose channel is full
is dropped, and its feed catches up from the store (see feed.py), so a slow reader never slows a
run.
"""

import attrs
import trio

from flowtrux.store.executions import StoredEvent


@attrs.define(eq=False)
class Hub:
    buffer: int = 1000
    _subscribers: dict[str, set[trio.MemorySendChannel[StoredEvent]]] = attrs.field(
        factory=dict, init=False
    )

    def open(self, execution_id: str) -> None:
        """Make `execution_id` live: from now on its published events reach subscribers."""
        self._subscribers[execution_id] = set()

    def subscribe(self, execution_id: str) -> trio.MemoryReceiveChannel[StoredEvent] | None:
        """A channel of the events published from now on, or None when the run is not live."""
        subscribers = self._subscribers.get(execution_id)
        if subscribers is None:
            return None
        send, receive = trio.open_memory_channel[StoredEvent](self.buffer)
        subscribers.add(send)
        return receive

    def publish(self, event: StoredEvent) -> None:
        """Hand a committed event to each subscriber; after a terminal event, close the run."""
        subscribers = self._subscribers.get(event.execution_id, set())
        for send in list(subscribers):
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError):
                send.close()  # lagging (it will catch up from the store) or gone
                subscribers.discard(send)
        if event.terminal:
            self.close(event.execution_id)

    def close(self, execution_id: str) -> None:
        """The run is no longer live: its subscribers' channels end (they read the store)."""
        for send in self._subscribers.pop(execution_id, set()):
            send.close()
