"""Mid-price momentum: follow the cross of a fast and a slow moving average.

Two exponential moving averages of the price (the book's mid, or public trade
prices) run on market time. Observations arrive at irregular times, so each
one moves an average by the weight a continuous-time EMA with time constant
``tau`` gives an interval of ``dt``:

    ema += (1 - exp(-dt / tau)) * (price - ema)

(the "next point" exponential moving average for unevenly spaced series of
Eckner, "Algorithms for unevenly spaced time series: moving averages and
other rolling operators", 2019: the new price stands for the whole interval
since the previous one).

The *regime* is +1 once the fast average is more than ``band_ticks`` ticks
above the slow one, -1 once it is as far below, and keeps its value inside the
band (hysteresis, so noise around the cross does not flip it). A change of
regime after ``warmup_ns`` of data is a cross: up, the strategy buys towards
``max_position``; down, it sells towards flat (or ``-max_position`` with
``allow_short``), ``quantity`` per order, one order at a time and
``cooldown_ns`` apart, until the next cross. Averages are floats (signal math
only); orders are priced from the book's integer touch.
"""

from __future__ import annotations

import math
from typing import Literal

from tradekernel_sdk import BookView, Strategy, StrategyContext
from tradekernel_sdk.types import BookDelta, BookSnapshot, Trade
from tradekernel_strategies.common import NS_PER_SECOND, TakerConfig, TakerStrategy

__all__ = ["Momentum"]


class Momentum(TakerStrategy):
    """Buy on a cross of the fast average above the slow one, sell on a cross below."""

    class Config(TakerConfig, frozen=True, kw_only=True):
        """Momentum parameters; see :class:`~tradekernel_strategies.common.TakerConfig`."""

        fast_ns: int = 2 * NS_PER_SECOND
        """Time constant of the fast average."""
        slow_ns: int = 10 * NS_PER_SECOND
        """Time constant of the slow average; longer than ``fast_ns``."""
        warmup_ns: int = 10 * NS_PER_SECOND
        """Market time of data before a cross counts."""
        band_ticks: int = 1
        """Half-width of the no-change band around the cross, in ticks."""
        source: Literal["mid", "trade"] = "mid"
        """Average the book's mid (``mid``) or public trade prices (``trade``)."""

        def __post_init__(self) -> None:
            """Refuse averages that cannot cross meaningfully."""
            super().__post_init__()
            if self.fast_ns <= 0:
                raise ValueError(f"fast_ns must be positive, got {self.fast_ns}")
            if self.slow_ns <= self.fast_ns:
                raise ValueError(
                    f"slow_ns must be longer than fast_ns ({self.fast_ns}), got {self.slow_ns}"
                )
            if self.warmup_ns < 0:
                raise ValueError(f"warmup_ns must not be negative, got {self.warmup_ns}")
            if self.band_ticks < 0:
                raise ValueError(f"band_ticks must not be negative, got {self.band_ticks}")

    config: Config

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Start with no averages."""
        super().__init__(context, config)
        self.fast: float | None = None
        """The fast average, in fixed-point price units."""
        self.slow: float | None = None
        """The slow average, in fixed-point price units."""
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.regime = 0
        """+1: fast above slow beyond the band; -1: below; 0: not yet either."""
        self.signal = 0
        """The side of the last cross seen after the warm-up; 0 before one."""

    @property
    def warm(self) -> bool:
        """Return whether ``warmup_ns`` of data has been seen."""
        if self.first_ns is None or self.last_ns is None:
            return False
        return self.last_ns - self.first_ns >= self.config.warmup_ns

    def observe(self, price: float, now: int) -> None:
        """Move both averages to ``price`` seen at ``now`` and update the regime."""
        if not math.isfinite(price) or price <= 0:
            return
        fast, slow, last_ns = self.fast, self.slow, self.last_ns
        if fast is None or slow is None or last_ns is None:
            self.fast = self.slow = price
            self.first_ns = self.last_ns = now
            return
        elapsed = now - last_ns
        if elapsed <= 0:
            return
        fast += (price - fast) * -math.expm1(-elapsed / self.config.fast_ns)
        slow += (price - slow) * -math.expm1(-elapsed / self.config.slow_ns)
        self.fast, self.slow, self.last_ns = fast, slow, now
        band = self.config.band_ticks * self.config.tick
        gap = fast - slow
        regime = 1 if gap > band else -1 if gap < -band else self.regime
        if regime != self.regime:
            self.regime = regime
            if self.warm:
                self.signal = regime

    def handle_book(self, update: BookDelta | BookSnapshot, book: BookView, now: int) -> None:
        """Update the averages from the mid (if that is the source) and trade on the signal."""
        if self.config.source == "mid":
            bid, ask = book.best_bid(), book.best_ask()
            if bid is None or ask is None:
                return
            self.observe((bid[0] + ask[0]) / 2, now)
        self.step(self.signal, book, now, "momentum")

    def on_trade(self, trade: Trade) -> None:
        """Update the averages from a public trade when trades are the source."""
        if (
            self.config.source == "trade"
            and self.book_valid
            and self.is_mine(trade.venue, trade.symbol)
            and trade.size > 0
        ):
            self.observe(float(trade.price), self.market_time(trade.ts_recv))

    def book_invalidated(self) -> None:
        """Wait for a fresh cross after the book comes back."""
        self.signal = 0
