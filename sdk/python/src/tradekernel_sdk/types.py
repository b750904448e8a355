"""Market-data domain types shared by the kernel and every plug-in.

All types are immutable ``msgspec`` structs. Prices and sizes are fixed-point
integers at the instrument's precision (see :mod:`tradekernel_sdk.fixedpoint`);
timestamps are integer nanoseconds since the Unix epoch. ``ts_event`` is the
venue's time, ``ts_recv`` the time the kernel received the frame: the two come
from different clocks and need not be ordered.

Book levels are ``(price, size)`` tuples. In a :class:`BookDelta` a size of 0
deletes the level.
"""

from __future__ import annotations

import enum

import msgspec

from tradekernel_sdk.fixedpoint import from_fixed, to_fixed

__all__ = [
    "AggressorSide",
    "Bar",
    "BookDelta",
    "BookSnapshot",
    "BookState",
    "BookStatus",
    "Instrument",
    "Level",
    "MarketEvent",
    "Quote",
    "Trade",
]

Level = tuple[int, int]
"""One book level: ``(price, size)`` in fixed-point units."""


class AggressorSide(enum.Enum):
    """Which side took liquidity in a trade."""

    UNKNOWN = "unknown"
    BUY = "buy"
    SELL = "sell"


class BookState(enum.Enum):
    """Whether a book can be trusted."""

    SYNCING = "syncing"
    """Waiting for a snapshot and the diff that bridges it."""
    VALID = "valid"
    """Every update since the snapshot arrived in sequence and passed its checks."""
    INVALID = "invalid"
    """A gap, checksum failure or crossed book was seen; nothing is published until resync."""


class Instrument(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """A tradable instrument and the fixed-point scales of its prices and sizes.

    ``tick`` and ``lot`` are in fixed-point units: BTCUSDT spot with
    ``price_precision=2`` and a 0.01 tick has ``tick=1``.
    """

    venue: str
    symbol: str
    price_precision: int
    size_precision: int
    tick: int = 1
    lot: int = 1
    base: str = ""
    quote: str = ""

    @property
    def key(self) -> str:
        """Return ``"venue.symbol"``, the instrument's name in topics and logs."""
        return f"{self.venue}.{self.symbol}"

    def price(self, text: str) -> int:
        """Convert a decimal price string exactly to fixed-point."""
        return to_fixed(text, self.price_precision)

    def size(self, text: str) -> int:
        """Convert a decimal size string exactly to fixed-point."""
        return to_fixed(text, self.size_precision)

    def price_text(self, value: int) -> str:
        """Format a fixed-point price as a decimal string."""
        return from_fixed(value, self.price_precision)

    def size_text(self, value: int) -> str:
        """Format a fixed-point size as a decimal string."""
        return from_fixed(value, self.size_precision)


class BookDelta(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=True):
    """Level changes applied to a book in one venue message.

    ``first_sequence``..``sequence`` is the venue's update-id range the message
    covers (equal when the venue numbers messages, not updates).
    """

    venue: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    first_sequence: int
    sequence: int
    ts_event: int
    ts_recv: int


class BookSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=True):
    """A full (or depth-limited) book: bids best first (descending), asks best first."""

    venue: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int
    ts_event: int
    ts_recv: int


class Quote(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=True):
    """Best bid and offer as published by the venue (or derived from a book)."""

    venue: str
    symbol: str
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int
    sequence: int
    ts_event: int
    ts_recv: int


class Trade(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=True):
    """One public trade."""

    venue: str
    symbol: str
    price: int
    size: int
    aggressor: AggressorSide
    trade_id: str
    ts_event: int
    ts_recv: int


class Bar(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=True):
    """An OHLCV bar covering ``[ts_open, ts_open + interval_ns)``."""

    venue: str
    symbol: str
    interval_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    ts_open: int


class BookStatus(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """A change in a book's trustworthiness, with the reason for it."""

    venue: str
    symbol: str
    state: BookState
    reason: str
    sequence: int
    ts_recv: int


MarketEvent = BookDelta | BookSnapshot | Quote | Trade | Bar | BookStatus
"""Every market-data event that travels on the bus."""
