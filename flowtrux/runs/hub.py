"""Fan-out of committed events to the subscribers of live runs.

Each subscriber holds at most `max_bytes` of events. Publishing never waits: a subscriber that
would hold more is dropped, with what it held, and its feed catches up from the store (see
feed.py), so a slow reader never slows a run nor grows the server.
"""

from __future__ import annotations

from collections import deque

import attrs
import trio

from flowtrux.store.executions import StoredEvent

SUBSCRIBER_BYTES = 1024 * 1024


@attrs.define(eq=False)
class Subscription:
    """The committed events of one live run for one subscriber, in order."""

    max_bytes: int
    _events: deque[StoredEvent] = attrs.field(factory=deque, init=False)
    _size: int = attrs.field(default=0, init=False)
    _ended: bool = attrs.field(default=False, init=False)
    _arrived: trio.Event = attrs.field(factory=trio.Event, init=False)

    @property
    def size(self) -> int:
        return self._size

    def put(self, event: StoredEvent) -> bool:
        """Queue `event`; False, with the queue emptied, when that would hold too much."""
        if self._events and self._size + event.size > self.max_bytes:
            self.drop()
            return False
        self._events.append(event)
        self._size += event.size
        self._arrived.set()
        return True

    def end(self) -> None:
        """No event will follow those queued."""
        self._ended = True
        self._arrived.set()

    def drop(self) -> None:
        """Forget what is queued and end: the reader re-reads the store."""
        self._events.clear()
        self._size = 0
        self.end()

    async def receive(self) -> StoredEvent:
        """The next event; EndOfChannel once ended and empty. Checkpoints."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._events:
            if self._ended:
                raise trio.EndOfChannel
            await self._arrived.wait()
            self._arrived = trio.Event()
        event = self.receive_nowait()
        await trio.lowlevel.cancel_shielded_checkpoint()
        assert event is not None
        return event

    def receive_nowait(self) -> StoredEvent | None:
        """The next event if one is queued, else None (ended or not)."""
        if not self._events:
            return None
        event = self._events.popleft()
        self._size -= event.size
        return event


@attrs.frozen
class HubStatistics:
    live_runs: int
    subscribers: int
    queued_bytes: int


@attrs.define(eq=False)
class Hub:
    max_subscriber_bytes: int = SUBSCRIBER_BYTES
    _subscribers: dict[str, set[Subscription]] = attrs.field(factory=dict, init=False)

    def open(self, execution_id: str) -> None:
        """Make `execution_id` live: from now on its published events reach subscribers."""
        self._subscribers[execution_id] = set()

    def subscribe(self, execution_id: str) -> Subscription | None:
        """The events published from now on, or None when the run is not live."""
        subscribers = self._subscribers.get(execution_id)
        if subscribers is None:
            return None
        subscription = Subscription(self.max_subscriber_bytes)
        subscribers.add(subscription)
        return subscription

    def unsubscribe(self, execution_id: str, subscription: Subscription) -> None:
        """The subscriber is gone: forget it now, not at the run's next event."""
        subscription.drop()
        self._subscribers.get(execution_id, set()).discard(subscription)

    def publish(self, event: StoredEvent) -> None:
        """Hand a committed event to each subscriber; after a terminal event, close the run."""
        subscribers = self._subscribers.get(event.execution_id, set())
        for subscription in list(subscribers):
            if not subscription.put(event):
                subscribers.discard(subscription)  # lagging: it catches up from the store
        if event.terminal:
            self.close(event.execution_id)

    def close(self, execution_id: str) -> None:
        """The run is no longer live: its subscribers end after what they hold."""
        for subscription in self._subscribers.pop(execution_id, set()):
            subscription.end()

    def statistics(self) -> HubStatistics:
        subscriptions = [s for subscribers in self._subscribers.values() for s in subscribers]
        return HubStatistics(
            live_runs=len(self._subscribers),
            subscribers=len(subscriptions),
            queued_bytes=sum(subscription.size for subscription in subscriptions),
        )
