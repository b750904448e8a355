"""A light order book for code outside the kernel: rebuilt from snapshots and deltas.

The kernel's own book lives in ``kernel.book``; plug-ins, out-of-process
components and offline feature runs only need to follow one from the events
it publishes. Each side is a ``price -> size`` dict plus its prices in a
sorted list, so the best price is O(1), a level change is one binary search,
and a depth view is a slice.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from tradekernel_sdk.types import Level

__all__ = ["SortedBook"]


class SortedBook:
    """Both sides of a book at fixed-point prices and sizes (a ``BookView``)."""

    def __init__(self) -> None:
        """Start empty."""
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_prices: list[int] = []  # ascending: the best bid is last
        self._ask_prices: list[int] = []  # ascending: the best ask is first

    def clear(self) -> None:
        """Empty both sides."""
        self.bids.clear()
        self.asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()

    def apply_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Set each level's size; a size of 0 deletes the level."""
        self._apply_side(self.bids, self._bid_prices, bids)
        self._apply_side(self.asks, self._ask_prices, asks)

    @staticmethod
    def _apply_side(sizes: dict[int, int], prices: list[int], levels: Iterable[Level]) -> None:
        for price, size in levels:
            if size:
                if price not in sizes:
                    bisect.insort(prices, price)
                sizes[price] = size
            elif sizes.pop(price, None) is not None:
                del prices[bisect.bisect_left(prices, price)]

    def best_bid(self) -> Level | None:
        """Return the highest bid, or ``None``."""
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        """Return the lowest ask, or ``None``."""
        if not self._ask_prices:
            return None
        price = self._ask_prices[0]
        return price, self.asks[price]

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Return bids best first, ``depth`` of them at most."""
        prices = self._bid_prices
        chosen = prices[::-1] if depth is None else prices[: -depth - 1 : -1]
        bids = self.bids
        return [(price, bids[price]) for price in chosen]

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Return asks best first, ``depth`` of them at most."""
        chosen = self._ask_prices if depth is None else self._ask_prices[:depth]
        asks = self.asks
        return [(price, asks[price]) for price in chosen]
