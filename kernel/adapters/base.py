"""What every venue feed shares: the raw frame, its counters and the feed protocol.

A feed turns raw frames from one venue (live from a websocket, or replayed from
a recording) into verified books and market events on the bus. Frames are
bytes exactly as received; parsing happens inside the feed.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

from kernel.book import L2Book
from tradekernel_sdk.types import BookState, Instrument

__all__ = ["STAT_NAMES", "Feed", "FeedStats", "RawFrame", "count_malformed"]


class RawFrame(NamedTuple):
    """One received message.

    ``source`` says where it came from: a connection URL, a REST call such as
    ``rest:depth:BTCUSDT``, or a recording file. Feeds use it to attribute a
    message that does not name its instrument (a Binance REST depth snapshot).
    """

    recv_ns: int
    payload: bytes
    source: str = ""


STAT_NAMES = (
    "frames",
    "book_updates",
    "level_updates",
    "quotes",
    "trades",
    "resyncs",
    "gaps",
    "oracle_checks",
    "oracle_mismatches",
    "checksum_checks",
    "checksum_failures",
    "crossed_books",
    "malformed_frames",
)


class FeedStats:
    """Plain integer counters a feed bumps on the hot path.

    They are read by the Prometheus collector at scrape time and by replay
    summaries, so counting costs one attribute increment.
    """

    __slots__ = STAT_NAMES

    frames: int
    book_updates: int
    level_updates: int
    quotes: int
    trades: int
    resyncs: int
    gaps: int
    oracle_checks: int
    oracle_mismatches: int
    checksum_checks: int
    checksum_failures: int
    crossed_books: int
    malformed_frames: int

    def __init__(self) -> None:
        for name in STAT_NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """Return every counter by name."""
        return {name: getattr(self, name) for name in STAT_NAMES}

    def add(self, other: FeedStats) -> None:
        """Add another feed's counters into this one."""
        for name in STAT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Feed(Protocol):
    """A venue's market-data pipeline: frame → parse → sync → book → bus."""

    venue: str
    stats: FeedStats

    def on_frame(self, frame: RawFrame) -> None:
        """Process one raw frame; malformed input is counted, never raised."""

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol`` (None when the feed has not seen it)."""

    def book_state(self, symbol: str) -> BookState:
        """Return whether ``symbol``'s book is syncing, valid or invalid."""

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument whose precisions scale ``symbol``'s prices and sizes."""

    @property
    def symbols(self) -> list[str]:
        """Return the symbols the feed has seen."""


# The first malformed frames are logged in full, then every 1000th, so a broken
# stream cannot flood the log.
_LOG_FIRST_MALFORMED = 10
_LOG_EVERY_MALFORMED = 1000


def count_malformed(
    stats: FeedStats, log: logging.Logger, label: str, frame: RawFrame, error: Exception
) -> None:
    """Count a frame a feed could not use and log it, throttled (``label``: the venue's name)."""
    count = stats.malformed_frames = stats.malformed_frames + 1
    if count <= _LOG_FIRST_MALFORMED or count % _LOG_EVERY_MALFORMED == 0:
        log.warning(
            "malformed %s frame #%d from %s (%s: %s): %.200r",
            label,
            count,
            frame.source or "?",
            type(error).__name__,
            error,
            frame.payload,
        )
