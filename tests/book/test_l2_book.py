"""The L2 book behaves exactly like a plain sorted reference model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.book import L2Book

prices = st.integers(min_value=1, max_value=60)
sizes = st.integers(min_value=0, max_value=5)  # 0 deletes; small ranges force reuse
levels = st.lists(st.tuples(prices, sizes), max_size=8)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), levels, levels),
        st.tuples(st.just("load"), levels, levels),
        st.tuples(st.just("clear"), st.just([]), st.just([])),
    ),
    max_size=60,
)


class ReferenceBook:
    """The obviously correct book: two dicts, sorted on every read."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        for side, updates in ((self.bids, bids), (self.asks, asks)):
            for price, size in updates:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def load(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        self.bids = {}
        self.asks = {}
        self.apply(bids, asks)

    def bid_levels(self) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True)

    def ask_levels(self) -> list[tuple[int, int]]:
        return sorted(self.asks.items())


@settings(max_examples=300)
@given(operations, st.integers(min_value=1, max_value=10))
def test_book_matches_reference_after_any_sequence_of_updates(
    ops: list[tuple[str, list[tuple[int, int]], list[tuple[int, int]]]], depth: int
) -> None:
    book = L2Book()
    reference = ReferenceBook()
    for name, bids, asks in ops:
        if name == "apply":
            book.apply(bids, asks)
            reference.apply(bids, asks)
        elif name == "load":
            book.load(bids, asks)
            reference.load(bids, asks)
        else:
            book.clear()
            reference.load([], [])
        expected_bids = reference.bid_levels()
        expected_asks = reference.ask_levels()
        assert book.bid_levels() == expected_bids
        assert book.ask_levels() == expected_asks
        assert book.bid_levels(depth) == expected_bids[:depth]
        assert book.ask_levels(depth) == expected_asks[:depth]
        assert book.best_bid() == (expected_bids[0] if expected_bids else None)
        assert book.best_ask() == (expected_asks[0] if expected_asks else None)
        crossed = bool(
            expected_bids and expected_asks and expected_bids[0][0] >= expected_asks[0][0]
        )
        assert book.is_crossed() is crossed
        assert len(book) == len(expected_bids) + len(expected_asks)


def test_heap_of_stale_prices_is_compacted() -> None:
    book = L2Book()
    for round_ in range(200):
        book.apply([(price, 1) for price in range(100)], [])
        book.apply([(price, 0) for price in range(100) if price != round_ % 100], [])
    assert len(book._bid_heap) <= 2 * len(book.bids) + 64 + 100
    assert book.best_bid() == (199 % 100, 1)


def test_mid_is_kept_integral_as_twice_the_mid() -> None:
    book = L2Book()
    assert book.mid_price_x2() is None
    book.load([(100, 1)], [(103, 1)])
    assert book.mid_price_x2() == 203


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 3)), min_size=100, max_size=1500),
    st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 3)), max_size=600),
    st.integers(min_value=1, max_value=8),
)
def test_shallow_depth_views_of_deep_books_match_a_full_sort(
    first: list[tuple[int, int]], second: list[tuple[int, int]], depth: int
) -> None:
    # Deep books take the heap-walk path for small depths; churn leaves stale heap entries.
    book = L2Book()
    reference = ReferenceBook()
    for updates in (first, second, first[::3]):
        book.apply(updates, updates)
        reference.apply(updates, updates)
        assert book.bid_levels(depth) == reference.bid_levels()[:depth]
        assert book.ask_levels(depth) == reference.ask_levels()[:depth]
