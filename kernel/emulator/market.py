"""The replayed market: recorded frames played back in time, fanned out to subscribers.

A :class:`ReplayMarket` reads recorded frames (any format
:func:`kernel.recording.open_frames` reads, merged by receive time) and plays
them once (or ``passes`` times, for soaks), at ``speed`` times the recorded
pace or as fast as the subscribers read (``speed=None``). It starts when the
first client subscribes to market data (or on :meth:`start`), can be paused
and resumed, and keeps the venue's books as strings so REST snapshots and
subscription snapshots describe exactly the state the stream has reached.
Venue subclasses decide what a frame is and who gets it.

Between two passes the market restarts, as a venue does at maintenance: every
market-data connection is closed (code 1001), the books start again from the
recording's snapshot, and the next pass waits for a client to come back, so
clients reconnect and resynchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from kernel.adapters.base import RawFrame
from kernel.book import L2Book
from kernel.emulator.faults import EmulatorStats
from kernel.emulator.streams import StreamConnection
from kernel.recording import merge_frames, open_frames

__all__ = ["ReplayMarket", "StringBookSide", "read_frames"]

log = logging.getLogger(__name__)

# Frames replayed between two yields to the event loop when nobody applies backpressure.
_YIELD_EVERY = 64


def read_frames(paths: Iterable[str | os.PathLike[str]]) -> Iterator[RawFrame]:
    """Return the frames of every file, merged by receive time."""
    return merge_frames(*(open_frames(path) for path in paths))


def _is_zero(size: str) -> bool:
    return not size.strip("0.")


class StringBookSide:
    """One side of a book as received: price string → level (the venue's own list)."""

    __slots__ = ("_descending", "levels")

    def __init__(self, descending: bool) -> None:
        self._descending = descending
        self.levels: dict[str, list[str]] = {}

    def load(self, levels: Iterable[list[str]]) -> None:
        """Replace every level (zero sizes are skipped)."""
        self.levels = {level[0]: level for level in levels if not _is_zero(level[1])}

    def apply(self, levels: Iterable[list[str]]) -> None:
        """Set or delete (size zero) each level."""
        book = self.levels
        for level in levels:
            if _is_zero(level[1]):
                book.pop(level[0], None)
            else:
                book[level[0]] = level

    def best(self, depth: int | None = None) -> list[list[str]]:
        """Return the levels best first, at most ``depth`` of them."""
        prices = sorted(self.levels, key=Decimal, reverse=self._descending)
        if depth is not None:
            prices = prices[:depth]
        return [self.levels[price] for price in prices]

    def copy(self) -> StringBookSide:
        """Return an independent copy."""
        side = StringBookSide(self._descending)
        side.levels = dict(self.levels)
        return side


class ReplayMarket:
    """Plays recorded frames once and hands each to the venue logic in :meth:`on_frame`."""

    def __init__(
        self,
        frames: Iterable[RawFrame],
        *,
        stats: EmulatorStats,
        speed: float | None = None,
        passes: int | None = 1,
        reopen: Callable[[], Iterable[RawFrame]] | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None (as fast as read), got {speed}")
        if passes != 1 and reopen is None:
            raise ValueError("replaying more than once needs recording files to reopen")
        if passes is not None and passes < 1:
            raise ValueError(f"passes must be at least 1 (None: forever), got {passes}")
        self.speed = speed
        self.passes = passes
        """How many times the recording is played (None: until stopped)."""
        self._reopen = reopen
        self.stats = stats
        self.started = asyncio.Event()
        """Set when the replay begins."""
        self.finished = asyncio.Event()
        """Set when every frame has been played."""
        self._frames = iter(frames)
        self._running = asyncio.Event()
        self._running.set()
        self._wanted = asyncio.Event()  # a client asked for market data since the last pass
        self._subscribers: dict[str, set[StreamConnection]] = {}
        self._task: asyncio.Task[None] | None = None
        self.market_ns = 0
        """Receive time of the last frame played (recorded time)."""

    # -- control ---------------------------------------------------------------

    def start(self) -> None:
        """Begin the replay, or the next pass after a restart (idempotent)."""
        self._wanted.set()
        if self._task is None:
            self.started.set()
            self._task = asyncio.get_running_loop().create_task(self._play())

    def pause(self) -> None:
        """Hold the replay after the frame in progress."""
        self._running.clear()

    def resume(self) -> None:
        """Continue a paused replay."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """Return whether the replay is paused."""
        return not self._running.is_set()

    async def close(self) -> None:
        """Stop the replay."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def step(self, frames: int) -> int:
        """Play up to ``frames`` frames now, whatever the pause state; return how many."""
        played = 0
        for frame in self._frames:
            await self._play_one(frame)
            played += 1
            if played >= frames:
                break
        return played

    # -- subscriptions ---------------------------------------------------------

    def subscribe(self, connection: StreamConnection, key: str) -> None:
        """Send the frames of stream ``key`` to ``connection`` from now on."""
        connection.keys.add(key)
        self._subscribers.setdefault(key, set()).add(connection)
        self.start()

    def unsubscribe(self, connection: StreamConnection, key: str) -> None:
        """Stop sending stream ``key`` to ``connection``."""
        connection.keys.discard(key)
        subscribers = self._subscribers.get(key)
        if subscribers is not None:
            subscribers.discard(connection)

    def forget(self, connection: StreamConnection) -> None:
        """Drop every subscription of a closed connection."""
        for key in list(connection.keys):
            self.unsubscribe(connection, key)

    def subscribers(self, key: str) -> list[StreamConnection]:
        """Return the open connections subscribed to ``key``."""
        return [c for c in self._subscribers.get(key, ()) if not c.closed]

    async def publish(self, key: str, payload: bytes) -> None:
        """Send one frame to every subscriber of ``key``."""
        for connection in self.subscribers(key):
            await connection.push(key, payload)

    # -- the replay ------------------------------------------------------------

    async def on_frame(self, frame: RawFrame) -> None:
        """Handle one recorded frame (venue logic)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the books before the recording plays again (venue logic)."""
        raise NotImplementedError

    def live_book(self, symbol: str) -> L2Book | None:
        """Return the verified book orders match against (venue logic)."""
        raise NotImplementedError

    async def _restart(self) -> None:
        """Close every market-data connection and start the books afresh."""
        connections = {c for subscribers in self._subscribers.values() for c in subscribers}
        for connection in connections:
            await connection.close(abrupt=False, code=1001, reason="market restart")
            self.forget(connection)
        self.reset()
        assert self._reopen is not None
        self._frames = iter(self._reopen())
        self._wanted.clear()

    async def _play_one(self, frame: RawFrame) -> None:
        self.market_ns = frame.recv_ns
        self.stats.replayed_frames += 1
        await self.on_frame(frame)

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        first_ns: int | None = None
        wall_start = loop.time()
        played = 0
        try:
            while True:
                for frame in self._frames:
                    if not self._running.is_set():
                        paused_at = loop.time()
                        await self._running.wait()
                        wall_start += loop.time() - paused_at
                    # REST captures (instruments) are reference data, played at once: they
                    # can precede the stream by minutes.
                    if self.speed is not None and not frame.source.startswith("rest:"):
                        if first_ns is None:
                            first_ns = frame.recv_ns
                        due = wall_start + (frame.recv_ns - first_ns) / 1e9 / self.speed
                        wait = due - loop.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    await self._play_one(frame)
                    played += 1
                    if played % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                self.stats.replay_passes += 1
                if self.passes is not None and self.stats.replay_passes >= self.passes:
                    break
                await self._restart()
                await self._wanted.wait()
                first_ns = None
                wall_start = loop.time()
        except Exception:
            log.exception("emulator replay failed")
            raise
        finally:
            log.info("emulator replay finished after %d frames", played)
            self.finished.set()
