"""Replay recorded frames through a venue feed, at full speed or paced by receive time."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from kernel.adapters.base import Feed, RawFrame
from kernel.asyncutil import wait_set
from kernel.metrics import StageLatency
from tradekernel_sdk.types import Instrument, Level

__all__ = ["Progress", "ReplayReport", "replay", "summarise"]

# Frames handled between two yields to the event loop at full speed: large
# enough to amortise the switch, small enough that a signal is seen promptly.
_BATCH = 2048


@dataclass
class ReplayReport:
    """What a replay did: the feed's counters, timing and each book's final state."""

    venue: str
    stats: dict[str, int]
    seconds: float
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    reader_malformed: int = 0
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def mismatches(self) -> int:
        """Return every disagreement with an oracle the data carries, gaps included."""
        stats = self.stats
        return (
            stats["oracle_mismatches"]
            + stats["checksum_failures"]
            + stats["gaps"]
            + stats["crossed_books"]
        )

    def as_json(self) -> dict[str, Any]:
        """Return the report as one JSON-ready object."""
        stats = dict(self.stats)
        stats["malformed_frames"] += self.reader_malformed
        seconds = self.seconds or 1e-9
        return {
            "venue": self.venue,
            **stats,
            "seconds": round(self.seconds, 6),
            "frames_per_second": round(stats["frames"] / seconds),
            "level_updates_per_second": round(stats["level_updates"] / seconds),
            "stage_latency_ns": self.stages,
            "books": self.books,
            "interrupted": self.interrupted,
        }


class Progress:
    """A one-line progress indicator on a terminal, periodic lines elsewhere."""

    def __init__(
        self, label: str, stream: TextIO | None = None, every_seconds: float = 0.2
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every_seconds if self.tty else 2.0
        self._last = 0.0
        self._started = time.perf_counter()

    def update(self, frames: int, first_ns: int, current_ns: int, force: bool = False) -> None:
        """Show how far the replay has got (rate-limited unless ``force``)."""
        now = time.perf_counter()
        if not force and now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self._started
        market_seconds = (current_ns - first_ns) / 1e9 if first_ns else 0.0
        line = (
            f"{self.label}: {frames:,} frames, {market_seconds:,.1f}s of market time "
            f"in {elapsed:.1f}s ({frames / max(elapsed, 1e-9):,.0f} frames/s)"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _level_text(instrument: Instrument | None, level: Level | None) -> list[str] | None:
    if level is None or instrument is None:
        return None
    price, size = level
    return [instrument.price_text(price), instrument.size_text(size)]


def summarise(feed: Feed, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Return each book's state, best bid and ask and level counts."""
    books: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        book = feed.book(symbol)
        if book is None:
            continue
        best_bid = book.best_bid()
        best_ask = book.best_ask()
        instrument = feed.instrument(symbol)
        books[symbol] = {
            "state": feed.book_state(symbol).value,
            "sequence": book.sequence,
            "bid_levels": len(book.bids),
            "ask_levels": len(book.asks),
            "best_bid": _level_text(instrument, best_bid),
            "best_ask": _level_text(instrument, best_ask),
        }
    return books


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep for ``seconds``; return True early if ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    return await wait_set(stop, seconds)


async def replay(
    frames: Iterable[RawFrame],
    feed: Feed,
    *,
    speed: float | None = None,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    latency: StageLatency | None = None,
) -> ReplayReport:
    """Feed every frame to ``feed``; ``speed=None`` runs flat out, ``2.0`` at twice real time.

    Yields to the event loop between batches so signals, timers and servers
    keep running; returns early (``interrupted``) when ``stop`` is set.
    """
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (or None for full speed)")
    on_frame = feed.on_frame
    frames_seen = 0
    first_ns = 0
    current_ns = 0
    interrupted = False
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    wall_start = loop.time()
    iterator: Iterator[RawFrame] = iter(frames)
    while True:
        batch_end = frames_seen + _BATCH
        for frame in iterator:
            current_ns = frame.recv_ns
            if not first_ns:
                first_ns = current_ns
            if speed is not None:
                due = wall_start + (current_ns - first_ns) / 1e9 / speed
                delay = due - loop.time()
                if delay > 0 and await _stopped_within(stop, delay):
                    interrupted = True
                    break
            on_frame(frame)
            frames_seen += 1
            if frames_seen >= batch_end:
                break
        else:
            break
        if interrupted:
            break
        if progress is not None:
            progress.update(frames_seen, first_ns, current_ns)
        await asyncio.sleep(0)
        if stop is not None and stop.is_set():
            interrupted = True
            break
    seconds = time.perf_counter() - started
    if progress is not None:
        progress.update(frames_seen, first_ns, current_ns, force=True)
        progress.close()
    stages: dict[str, dict[str, int]] = {}
    if latency is not None:
        for name, histogram in latency.stages().items():
            stages[name] = {
                "samples": histogram.count,
                "p50": histogram.quantile(0.5),
                "p99": histogram.quantile(0.99),
                "max": histogram.max_ns,
            }
    symbols = feed.symbols
    return ReplayReport(
        venue=feed.venue,
        stats=feed.stats.as_dict(),
        seconds=seconds,
        books=summarise(feed, symbols),
        stages=stages,
        interrupted=interrupted,
    )
