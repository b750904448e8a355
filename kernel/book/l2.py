"""A price-level (L2) order book on fixed-point integers.

Each side is a ``dict`` from price to size plus a binary heap of prices, so an
update is one dictionary write and, for a price the side did not hold, one
``heappush``. Deleted prices stay in the heap until they surface at its top
("lazy deletion"); the heap is rebuilt when stale entries outnumber live ones.
Best price is O(1) amortised and depth-N views cost O(n log N), which suits the
way books are used: every update touches the top, few readers walk the depth.
"""

from __future__ import annotations

from collections.abc import Iterable
from heapq import heapify, heappop, heappush, nlargest, nsmallest

from kernel.book.accel import apply_side, top_levels
from tradekernel_sdk.types import Level

__all__ = ["L2Book"]

# Rebuild a heap once it holds more than this many entries per live level.
_HEAP_SLACK = 2
_HEAP_MIN_REBUILD = 64
# Below this share of a side, depth views walk the heap instead of scanning every level.
_SHALLOW = 16


class L2Book:
    """One instrument's aggregated book.

    Prices and sizes are fixed-point integers. A size of 0 in an update deletes
    the level. The book itself does not judge sequencing; the venue's sync
    state machine does that and decides when to clear and reload it.
    """

    __slots__ = ("_ask_heap", "_bid_heap", "asks", "bids", "sequence", "ts_event", "ts_recv")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        # Bid prices are negated so both heaps are min-heaps.
        self._bid_heap: list[int] = []
        self._ask_heap: list[int] = []
        self.sequence = 0
        self.ts_event = 0
        self.ts_recv = 0

    # -- writing -------------------------------------------------------------

    def clear(self) -> None:
        """Remove every level."""
        self.bids.clear()
        self.asks.clear()
        self._bid_heap.clear()
        self._ask_heap.clear()
        self.sequence = 0

    def load(self, bids: Iterable[Level], asks: Iterable[Level], sequence: int = 0) -> None:
        """Replace the whole book with a snapshot (a repeated price keeps its last size)."""
        self.bids = {price: size for price, size in dict(bids).items() if size}
        self.asks = {price: size for price, size in dict(asks).items() if size}
        self._bid_heap = [-price for price in self.bids]
        self._ask_heap = list(self.asks)
        heapify(self._bid_heap)
        heapify(self._ask_heap)
        self.sequence = sequence

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply level updates: set each level's size, deleting it when the size is 0."""
        levels = self.bids
        heap = self._bid_heap
        # The compiled loop does exactly what the Python loop below does, or declines.
        if apply_side is None or not apply_side(levels, heap, bids, -1):
            for price, size in bids:
                if size:
                    if price not in levels:
                        heappush(heap, -price)
                    levels[price] = size
                else:
                    levels.pop(price, None)
        if len(heap) > _HEAP_SLACK * len(levels) + _HEAP_MIN_REBUILD:
            self._bid_heap = [-price for price in levels]
            heapify(self._bid_heap)

        levels = self.asks
        heap = self._ask_heap
        if apply_side is None or not apply_side(levels, heap, asks, 1):
            for price, size in asks:
                if size:
                    if price not in levels:
                        heappush(heap, price)
                    levels[price] = size
                else:
                    levels.pop(price, None)
        if len(heap) > _HEAP_SLACK * len(levels) + _HEAP_MIN_REBUILD:
            self._ask_heap = list(levels)
            heapify(self._ask_heap)

    def set_bid(self, price: int, size: int) -> None:
        """Set one bid level (size 0 deletes it)."""
        self.apply(((price, size),), ())

    def set_ask(self, price: int, size: int) -> None:
        """Set one ask level (size 0 deletes it)."""
        self.apply((), ((price, size),))

    # -- reading -------------------------------------------------------------

    def best_bid_price(self) -> int | None:
        """Return the highest bid price, or None when there are no bids."""
        heap = self._bid_heap
        levels = self.bids
        while heap:
            price = -heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def best_ask_price(self) -> int | None:
        """Return the lowest ask price, or None when there are no asks."""
        heap = self._ask_heap
        levels = self.asks
        while heap:
            price = heap[0]
            if price in levels:
                return price
            heappop(heap)
        return None

    def best_bid(self) -> Level | None:
        """Return ``(price, size)`` of the best bid, or None."""
        price = self.best_bid_price()
        return None if price is None else (price, self.bids[price])

    def best_ask(self) -> Level | None:
        """Return ``(price, size)`` of the best ask, or None."""
        price = self.best_ask_price()
        return None if price is None else (price, self.asks[price])

    def is_crossed(self) -> bool:
        """Return whether the best bid is at or above the best ask."""
        bid = self.best_bid_price()
        ask = self.best_ask_price()
        return bid is not None and ask is not None and bid >= ask

    def mid_price_x2(self) -> int | None:
        """Return best bid + best ask (twice the mid, kept integral), or None."""
        bid = self.best_bid_price()
        ask = self.best_ask_price()
        if bid is None or ask is None:
            return None
        return bid + ask

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Return bids best first, at most ``depth`` of them (all when None)."""
        levels = self.bids
        if depth is None:
            prices = sorted(levels, reverse=True)
        elif depth * _SHALLOW < len(levels):
            return top_levels(self._bid_heap, levels, depth, -1)
        else:
            prices = nlargest(depth, levels)
        return [(price, levels[price]) for price in prices]

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Return asks best first, at most ``depth`` of them (all when None)."""
        levels = self.asks
        if depth is None:
            prices = sorted(levels)
        elif depth * _SHALLOW < len(levels):
            return top_levels(self._ask_heap, levels, depth, 1)
        else:
            prices = nsmallest(depth, levels)
        return [(price, levels[price]) for price in prices]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def __repr__(self) -> str:
        return (
            f"L2Book(bids={len(self.bids)}, asks={len(self.asks)}, "
            f"best_bid={self.best_bid()}, best_ask={self.best_ask()}, sequence={self.sequence})"
        )
