"""A subscriber's view of one execution: every event after a sequence number, in order, once.

Stored events come first, a page at a time, then live ones. Before the page that reaches the end
of what is stored is read, the feed subscribes to the run's live events; fan-out happens only
after commit, so no event can fall between the two, and duplicates are dropped by sequence
number. While earlier pages are read nothing live is held. A feed the hub dropped for lagging, or
that sees a gap, simply catches up again. What one feed holds is bounded in bytes: one page,
and what its subscription may hold (see hub.py).

A run that is RUNNING in the store for another process (one that runs it, or ran it and died)
is followed by reading the store again (after 0.1 s, then every 0.2 s while nothing comes: an
event is seen at most 0.25 s after its commit), until its terminal event is stored:
by its process, or by the lease rules once that process is gone (see leases.py). A run of this
process that is no longer live here was given up (its end could not be stored): nothing follows.
"""

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import attrs
import trio

from flowtrux.backoff import pauses
from flowtrux.errors import StoreUnavailable
from flowtrux.runs.hub import Hub, Subscription
from flowtrux.store.executions import PAGE_BYTES, EventPage, ExecutionStore, StoredEvent

T = TypeVar("T")
logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class Feed:
    execution_id: str
    hub: Hub
    store: ExecutionStore
    process_id: str  # the process the feed is in
    last_seq: int = 0
    page_bytes: int = PAGE_BYTES
    _live: Subscription | None = attrs.field(default=None, init=False)
    _page: deque[StoredEvent] = attrs.field(factory=deque, init=False)
    _followed_elsewhere: bool = attrs.field(default=False, init=False)  # said so in the log
    _ended: bool = attrs.field(default=False, init=False)
    _elsewhere: bool = attrs.field(default=False, init=False)  # another process's RUNNING run
    _polls: Iterator[float] = attrs.field(factory=lambda: _poll_pauses(), init=False)
    _next_poll_at: float = attrs.field(default=0.0, init=False)  # a deadline: a cancelled
    # `receive` (a keepalive is due) does not put the next read off

    async def receive(self) -> StoredEvent:
        """The next event. Raises EndOfChannel after the terminal event, or when the run is
        neither live here nor RUNNING elsewhere, nor has stored events left to give.
        Checkpoints."""
        while not self._ended:
            event = await self._next()
            if self._is_new(event):
                return event
        raise trio.EndOfChannel

    def receive_nowait(self) -> StoredEvent | None:
        """The next event if it is at hand (read, or published to the feed), else None: then
        `receive` says what comes next. Never waits."""
        while not self._ended:
            event = self._page.popleft() if self._page else self._live_nowait()
            if event is None:
                return None
            if self._is_new(event):
                return event
        return None

    def _live_nowait(self) -> StoredEvent | None:
        if self._live is None or (event := self._live.receive_nowait()) is None:
            return None
        return event if self._follows(event) else None

    def _is_new(self, event: StoredEvent) -> bool:
        """Whether `event` comes after the last one given (if so, it is the last one now)."""
        if event.seq <= self.last_seq:
            return False
        self.last_seq = event.seq
        self._ended = event.terminal
        return True

    def _follows(self, event: StoredEvent) -> bool:
        """Whether a live `event` leaves no gap; when it does, the feed unsubscribes, and catches
        up from the store, which has what fell in the gap."""
        if event.seq <= self.last_seq + 1:
            return True
        self._unsubscribe()
        return False

    async def has_more(self) -> bool:
        """Whether an event may still come: one is stored after `last_seq`, or the run is live
        here or RUNNING elsewhere. What it reads is kept for `receive`. Checkpoints."""
        if self._page or self._live is not None or self._elsewhere:
            return True
        try:
            await self._catch_up()
        except trio.EndOfChannel:
            return False
        return True

    def close(self) -> None:
        """Stop following the run, and let go of what the feed holds."""
        self._unsubscribe()
        self._page.clear()
        self._ended = True

    async def _next(self) -> StoredEvent:
        while True:
            if self._page:
                return self._page.popleft()
            if self._live is not None:
                try:
                    event = await self._live.receive()
                except trio.EndOfChannel:
                    self._live = None  # dropped for lagging, or the run ended
                else:
                    if self._follows(event):
                        return event
            elif self._elsewhere:
                await trio.sleep_until(self._next_poll_at)
            await self._catch_up()

    async def _catch_up(self) -> None:
        live = self.hub.subscribe(self.execution_id)  # before the read: see the module's doc
        try:
            # Asked before the page is read: a run that ended since has its end in the page.
            elsewhere = live is None and await self._runs_elsewhere()
            page = await self._read_page()
        except BaseException:
            if live is not None:
                self.hub.unsubscribe(self.execution_id, live)
            raise
        if page.complete:
            self._live = live
        elif live is not None:
            self.hub.unsubscribe(self.execution_id, live)  # later pages come first
        if not page.events and live is None and not elsewhere:
            self._ended = True
            raise trio.EndOfChannel
        if elsewhere and not self._followed_elsewhere:
            self._followed_elsewhere = True
            logger.info("following execution %s through the store: another process runs it",
                        self.execution_id)  # fmt: skip
        self._elsewhere = elsewhere and not page.events
        if self._elsewhere:
            self._next_poll_at = trio.current_time() + next(self._polls)
        elif page.events:
            self._polls = _poll_pauses()
        self._page.extend(page.events)

    async def _read_page(self) -> EventPage:
        """The next page, waiting while the store cannot answer (a stream keeps its keepalives
        meanwhile)."""
        return await _patiently(
            lambda: self.store.events_after(
                self.execution_id, self.last_seq, max_bytes=self.page_bytes
            )
        )

    async def _runs_elsewhere(self) -> bool:
        return await _patiently(
            lambda: self.store.runs_elsewhere(self.execution_id, self.process_id)
        )

    def _unsubscribe(self) -> None:
        if self._live is not None:
            self.hub.unsubscribe(self.execution_id, self._live)
            self._live = None


def _poll_pauses() -> Iterator[float]:
    """The pauses between reads of a run followed through the store."""
    return pauses(0.1, 0.2)


async def _patiently(read: Callable[[], Awaitable[T]]) -> T:
    """`read()`, tried again while the store cannot answer."""
    for pause in pauses(0.05, 2.0):
        try:
            return await read()
        except StoreUnavailable:
            pass
        await trio.sleep(pause)
    raise AssertionError("pauses() never ends")
