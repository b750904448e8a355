"""Bounded per-client queues between the synchronous bus and a gRPC server stream.

The bus hands each stream's :class:`EventFeed` its events synchronously; the
feed only records them, within ``max_queued``, and wakes the stream's task.
Nothing a client does (reading slowly, or never) can block the kernel. What
happens when a client falls ``max_queued`` events behind depends on the feed:

* ``DROP_OLDEST``: the oldest queued event is dropped and counted (public
  trades: a gap costs the client nothing it cannot see in the next trade);
* ``FAIL``: the feed stops recording, the stream sends what it holds and then
  ends with RESOURCE_EXHAUSTED (orders and fills: a silent gap would leave the
  client with a wrong view; it reconnects and reads ``ListOrders``);
* with a ``key``, events conflate: a new event replaces the queued one with
  the same key (quotes: only the latest best bid and offer matters).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kernel.bus import Bus

__all__ = ["MAX_QUEUED", "EventFeed", "FeedStats", "Overflow", "SharedLog"]

T = TypeVar("T")

MAX_QUEUED = 1024
"""Events one stream may hold before its overflow policy applies."""


class Overflow(enum.Enum):
    """What a feed does when its client is ``max_queued`` events behind."""

    DROP_OLDEST = "drop_oldest"
    FAIL = "fail"


@dataclass
class FeedStats:
    """Counters of every stream of one rpc since start."""

    streams: int = 0
    """Streams open now."""
    sent: int = 0
    """Messages handed to gRPC."""
    dropped: int = 0
    """Events dropped because a client's queue was full."""
    conflated: int = 0
    """Events replaced by a newer one with the same key before they were sent."""
    overflowed: int = 0
    """Streams ended with RESOURCE_EXHAUSTED because their client fell too far behind."""


class EventFeed(Generic[T]):
    """One client's bounded queue of events, filled by bus handlers, drained by its stream."""

    def __init__(
        self,
        stats: FeedStats,
        *,
        max_queued: int = MAX_QUEUED,
        overflow: Overflow = Overflow.DROP_OLDEST,
        key: Callable[[T], Hashable] | None = None,
    ) -> None:
        self.stats = stats
        self.max_queued = max_queued
        self.overflow = overflow
        self.key = key
        self.overflowed = False
        """True once a FAIL feed overflowed: it records nothing more."""
        self._queue: deque[T] = deque()
        self._latest: dict[Hashable, T] = {}
        self.ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._latest) if self.key is not None else len(self._queue)

    def push(self, item: T) -> None:
        """Record ``item`` under the feed's overflow policy and wake the stream."""
        if self.overflowed:
            return
        if self.key is not None:
            key = self.key(item)
            if key in self._latest:
                self.stats.conflated += 1
            elif len(self._latest) >= self.max_queued:
                self.stats.dropped += 1
                return
            self._latest[key] = item
        elif len(self._queue) >= self.max_queued:
            if self.overflow is Overflow.FAIL:
                self.overflowed = True
                self.stats.overflowed += 1
                self.stats.dropped += 1
                self.ready.set()
                return
            self._queue.popleft()
            self.stats.dropped += 1
            self._queue.append(item)
        else:
            self._queue.append(item)
        self.ready.set()

    def last(self) -> T | None:
        """Return the newest queued event (not of a keyed feed), or None."""
        return self._queue[-1] if self._queue else None

    async def take(self) -> list[T]:
        """Wait until there is something, then return everything queued, oldest first."""
        await self.ready.wait()
        self.ready.clear()
        if self.key is not None:
            items = list(self._latest.values())
            self._latest.clear()
        else:
            items = list(self._queue)
            self._queue.clear()
        return items

    @contextmanager
    def attached(
        self, bus: Bus, subscriptions: Sequence[tuple[str, Callable[[Any], None]]]
    ) -> Iterator[EventFeed[T]]:
        """Subscribe the handlers for the duration of a stream; count the stream as open."""
        for pattern, handler in subscriptions:
            bus.subscribe(pattern, handler)
        self.stats.streams += 1
        try:
            yield self
        finally:
            self.stats.streams -= 1
            for pattern, handler in subscriptions:
                bus.unsubscribe(pattern, handler)


class SharedLog(Generic[T]):
    """One bus subscription for every stream of an rpc, read by each at its own cursor.

    With a feed per stream, the code that publishes an event pays a handler
    call per connected client — on the order path, for order events. Here the
    bus calls :meth:`append` once, whatever the number of clients; each
    stream's :class:`LogReader` copies what is new when it runs. A reader more
    than ``max_behind`` events behind has overflowed (the ``FAIL`` policy).
    The log subscribes to the bus while it has readers, and keeps only the
    events some reader has not read yet.
    """

    def __init__(
        self,
        bus: Bus,
        subscriptions: Sequence[tuple[str, Callable[[Any], None]]],
        stats: FeedStats,
        *,
        max_behind: int = MAX_QUEUED,
    ) -> None:
        self.bus = bus
        self.subscriptions = subscriptions
        self.stats = stats
        self.max_behind = max_behind
        self.items: deque[T] = deque()
        self.first = 0
        """The position of ``items[0]`` since the log was made."""
        self._readers: set[LogReader[T]] = set()
        self._grew = asyncio.Event()
        self._waiting = 0

    @property
    def end(self) -> int:
        """The position the next event will take."""
        return self.first + len(self.items)

    def append(self, item: T) -> None:
        """Record ``item`` for every reader (called from bus handlers)."""
        self.items.append(item)
        if len(self.items) > 2 * self.max_behind:
            self._trim()
        if self._waiting:  # a fresh Event per wake-up: every waiter of the old one runs
            self._grew.set()
            self._grew = asyncio.Event()

    def last(self) -> T | None:
        """Return the newest event, or None."""
        return self.items[-1] if self.items else None

    def _trim(self) -> None:
        """Forget events every reader has read; a reader too far behind overflows first."""
        limit = self.end - self.max_behind
        for reader in self._readers:
            if not reader.overflowed and reader.cursor < limit:
                reader.overflow()
        keep_from = min(
            (reader.cursor for reader in self._readers if not reader.overflowed),
            default=self.end,
        )
        while self.first < keep_from and self.items:
            self.items.popleft()
            self.first += 1

    async def wait(self, cursor: int) -> None:
        """Return once the log has an event at ``cursor`` or later."""
        while cursor >= self.end:
            self._waiting += 1
            try:
                await self._grew.wait()
            finally:
                self._waiting -= 1

    @contextmanager
    def reader(self) -> Iterator[LogReader[T]]:
        """Read the events appended from now on, for the duration of a stream."""
        reader = LogReader(self)
        if not self._readers:
            for pattern, handler in self.subscriptions:
                self.bus.subscribe(pattern, handler)
        self._readers.add(reader)
        self.stats.streams += 1
        try:
            yield reader
        finally:
            self.stats.streams -= 1
            self._readers.discard(reader)
            if not self._readers:
                for pattern, handler in self.subscriptions:
                    self.bus.unsubscribe(pattern, handler)
                self.first = self.end
                self.items.clear()


class LogReader(Generic[T]):
    """One stream's position in a :class:`SharedLog`."""

    def __init__(self, log: SharedLog[T]) -> None:
        self.log = log
        self.cursor = log.end
        self.overflowed = False
        """True once the reader fell more than ``max_behind`` events behind."""
        self._held: list[T] = []

    def overflow(self) -> None:
        """Keep the next ``max_behind`` events for the stream to send, and read no more."""
        log = self.log
        start = self.cursor - log.first
        self._held = [log.items[i] for i in range(start, start + log.max_behind)]
        self.overflowed = True
        log.stats.overflowed += 1
        log.stats.dropped += log.end - self.cursor - len(self._held)
        self.cursor = log.end

    async def take(self) -> list[T]:
        """Wait for new events and return them, oldest first; after an overflow, the last ones."""
        if self.overflowed:
            return self.take_held()
        log = self.log
        await log.wait(self.cursor)
        if self.overflowed:  # it fell behind while this stream waited
            return self.take_held()
        if log.end - self.cursor > log.max_behind:
            self.overflow()
            return self.take_held()
        offset = self.cursor - log.first
        items = [log.items[i] for i in range(offset, len(log.items))]
        self.cursor = log.end
        return items

    def take_held(self) -> list[T]:
        """Return what an overflow kept, once."""
        held, self._held = self._held, []
        return held
