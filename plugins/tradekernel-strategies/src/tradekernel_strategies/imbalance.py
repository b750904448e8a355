"""Order-book imbalance: lean with the side of the book that holds more size.

Over the best ``depth`` levels of each side, with ``B`` the total bid size and
``A`` the total ask size, the imbalance is

    I = (B - A) / (B + A),  in [-1, 1],

a short-horizon predictor of the direction of the next mid-price move
(Lipton, Pesavento and Sotiropoulos, "Trade arrival dynamics and quote
imbalance in a limit order book", arXiv:1312.0514, 2013; Gould and Bonart,
"Queue imbalance as a one-tick-ahead price predictor in a limit order book",
Market Microstructure and Liquidity 2(2), 2016, for the best level alone).
It is kept as an exact
:class:`~fractions.Fraction` and compared with the threshold in integers:
``I > t`` is ``(B - A) * 10_000 > threshold_bps * (B + A)``.

When ``I > +threshold`` the strategy buys ``quantity`` (an immediate-or-cancel
limit at the best ask, or a market order) while its position is below
``max_position``; when ``I < -threshold`` it sells, down to flat (or to
``-max_position`` with ``allow_short``). One order at a time, at least
``cooldown_ns`` of market time apart.
"""

from __future__ import annotations

from fractions import Fraction

from tradekernel_sdk import BookView, Strategy, StrategyContext
from tradekernel_sdk.types import BookDelta, BookSnapshot
from tradekernel_strategies.common import BPS, TakerConfig, TakerStrategy, side_sizes

__all__ = ["Imbalance"]


class Imbalance(TakerStrategy):
    """Buy when bids outweigh asks over the top levels, sell when asks outweigh bids."""

    class Config(TakerConfig, frozen=True, kw_only=True):
        """Imbalance parameters; see :class:`~tradekernel_strategies.common.TakerConfig`."""

        depth: int = 5
        """Levels per side summed into the imbalance."""
        threshold_bps: int = 3_000
        """Trade when ``|I|`` exceeds this, in basis points of 1 (3_000: 0.3)."""

        def __post_init__(self) -> None:
            """Refuse a depth or threshold that cannot give a signal."""
            super().__post_init__()
            if self.depth < 1:
                raise ValueError(f"depth must be at least 1, got {self.depth}")
            if not 0 <= self.threshold_bps < BPS:
                raise ValueError(f"threshold_bps must be in [0, {BPS}), got {self.threshold_bps}")

    config: Config

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Start with no imbalance seen."""
        super().__init__(context, config)
        self._sizes = (0, 0)  # bid and ask size summed over the depth, at the last update
        self.signal = 0
        """+1 above the threshold, -1 below its negative, else 0."""

    @property
    def imbalance(self) -> Fraction | None:
        """Return the latest imbalance, exact; ``None`` when both sides were empty."""
        bids, asks = self._sizes
        return None if bids + asks <= 0 else Fraction(bids - asks, bids + asks)

    def handle_book(self, update: BookDelta | BookSnapshot, book: BookView, now: int) -> None:
        """Recompute the imbalance and step the position towards its side."""
        depth = self.config.depth
        bids = side_sizes(book.bid_levels(depth))
        asks = side_sizes(book.ask_levels(depth))
        total = bids + asks
        self._sizes = (bids, asks)
        if total <= 0:
            self.signal = 0
            return
        excess = (bids - asks) * BPS
        bar = self.config.threshold_bps * total
        self.signal = 1 if excess > bar else -1 if excess < -bar else 0
        self.step(self.signal, book, now, "imbalance")
