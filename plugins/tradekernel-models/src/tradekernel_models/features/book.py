"""Order-book features: imbalance, mid and microprice, spread, depth slopes, order-flow imbalance.

Every value here is exact: sums and differences of fixed-point integers, and
quotients as integers at a stated scale, rounded toward minus infinity. Each
update reads at most the top ``max(depths)`` levels of each side, so its cost
does not grow with the number of events seen.
"""

from __future__ import annotations

from collections import deque

from tradekernel_sdk.features import RATIO_SCALE, EventKind, Feature, FeatureParamsError, Output
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import BookDelta, BookSnapshot

__all__ = [
    "PRICE_SUBUNITS",
    "SLOPE_SCALE",
    "BookImbalance",
    "DepthSlope",
    "Microprice",
    "OrderFlowImbalance",
    "Spread",
]

PRICE_SUBUNITS = 1_000
"""Scale of derived prices: a raw microprice of 1000 is one fixed-point price unit."""

SLOPE_SCALE = 10**6
"""Scale of depth slopes (fixed-point size units per fixed-point price unit)."""

_BOOK = frozenset({EventKind.BOOK})


def _check_depths(name: str, depths: tuple[int, ...]) -> None:
    if not depths or any(depth < 1 for depth in depths) or len(set(depths)) != len(depths):
        raise FeatureParamsError(f"feature {name!r}: depths must be distinct positive integers")


class BookImbalance(Feature):
    """Order-book imbalance over the top ``k`` levels, for each ``k`` in ``depths``.

    ``imbalance_k = (Σ bid sizes − Σ ask sizes) / (Σ bid sizes + Σ ask sizes)``
    over the best ``k`` levels of each side, in [-1, 1]: the depth-``k`` queue
    imbalance of Cartea, Donnelly & Jaimungal, "Enhancing trading strategies
    with order book signals" (Applied Mathematical Finance, 2018), and Gould &
    Bonart, "Queue imbalance as a one-tick-ahead price predictor in a limit
    order book" (Market Microstructure and Liquidity, 2016) for ``k = 1``.

    Scale :data:`~tradekernel_sdk.features.RATIO_SCALE` (10^9 means +1),
    floored. Undefined while either side has fewer than ``k`` levels.
    """

    name = "book_imbalance"
    version = 1
    inputs = _BOOK

    class Params(Feature.Params, frozen=True):
        depths: tuple[int, ...] = (1, 5, 10)

    params: Params

    def check_params(self) -> None:
        _check_depths(self.name, self.params.depths)

    def describe(self) -> tuple[Output, ...]:
        return tuple(
            Output(f"imbalance_{depth}", RATIO_SCALE, unit="ratio") for depth in self.params.depths
        )

    def reset(self) -> None:
        super().reset()
        self._deepest = max(self.params.depths)

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bids = book.bid_levels(self._deepest)
        asks = book.ask_levels(self._deepest)
        values: list[int | None] = []
        for depth in self.params.depths:
            if len(bids) < depth or len(asks) < depth:
                values.append(None)
                continue
            bid_size = sum(size for _, size in bids[:depth])
            ask_size = sum(size for _, size in asks[:depth])
            values.append((bid_size - ask_size) * RATIO_SCALE // (bid_size + ask_size))
        self.values = tuple(values)


class Microprice(Feature):
    """The mid price and the size-weighted mid price ("microprice") of the top of the book.

    ``mid = (P_b + P_a) / 2`` is output exactly as ``P_b + P_a`` at scale 2.
    ``microprice = (P_b · Q_a + P_a · Q_b) / (Q_a + Q_b)``, the mid weighted by
    the opposite queue sizes (the "weighted mid price" of Stoikov, "The
    micro-price: a high-frequency estimator of future prices", Quantitative
    Finance, 2018, section 2; Gatheral & Oomen 2010), at scale
    :data:`PRICE_SUBUNITS`, floored. Both in the instrument's fixed-point
    price units; undefined while either side is empty.
    """

    name = "microprice"
    version = 1
    inputs = _BOOK

    def describe(self) -> tuple[Output, ...]:
        return (
            Output("mid", 2, unit="price"),
            Output("microprice", PRICE_SUBUNITS, unit="price"),
        )

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bid = book.best_bid()
        ask = book.best_ask()
        if bid is None or ask is None:
            self.values = (None, None)
            return
        bid_price, bid_size = bid
        ask_price, ask_size = ask
        weighted = (bid_price * ask_size + ask_price * bid_size) * PRICE_SUBUNITS
        self.values = (bid_price + ask_price, weighted // (bid_size + ask_size))


class Spread(Feature):
    """The bid-ask spread, absolute and relative to the mid.

    ``spread = P_a − P_b`` in fixed-point price units (exact, scale 1);
    ``relative_spread = (P_a − P_b) / ((P_a + P_b) / 2)`` at scale
    :data:`~tradekernel_sdk.features.RATIO_SCALE`, floored (the quoted
    spread of market-microstructure texts, e.g. Harris, "Trading and
    Exchanges", 2003, ch. 14). Undefined while either side is empty.
    """

    name = "spread"
    version = 1
    inputs = _BOOK

    def describe(self) -> tuple[Output, ...]:
        return (
            Output("spread", 1, unit="price"),
            Output("relative_spread", RATIO_SCALE, unit="ratio"),
        )

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bid = book.best_bid()
        ask = book.best_ask()
        if bid is None or ask is None:
            self.values = (None, None)
            return
        spread = ask[0] - bid[0]
        self.values = (spread, 2 * spread * RATIO_SCALE // (ask[0] + bid[0]))


class DepthSlope(Feature):
    """How fast cumulative depth grows away from the mid, per side, for each ``k`` in ``depths``.

    ``bid_slope_k = Σ_{i≤k} Q_b,i / (mid − P_b,k)`` and
    ``ask_slope_k = Σ_{i≤k} Q_a,i / (P_a,k − mid)``: the size resting within
    the best ``k`` levels per unit of price distance from the mid to the
    ``k``-th level (the order-book slope of Næs & Skjeltorp, "Order book
    characteristics and the volume–volatility relation", Journal of Financial
    Markets, 2006, measured at one depth). A steep slope is a deep, resilient
    side. Fixed-point size units per fixed-point price unit, scale
    :data:`SLOPE_SCALE`, floored; undefined while a side has fewer than ``k``
    levels.
    """

    name = "depth_slope"
    version = 1
    inputs = _BOOK

    class Params(Feature.Params, frozen=True):
        depths: tuple[int, ...] = (5, 10)

    params: Params

    def check_params(self) -> None:
        _check_depths(self.name, self.params.depths)

    def describe(self) -> tuple[Output, ...]:
        outputs: list[Output] = []
        for depth in self.params.depths:
            outputs.append(Output(f"bid_slope_{depth}", SLOPE_SCALE, unit="size/price"))
            outputs.append(Output(f"ask_slope_{depth}", SLOPE_SCALE, unit="size/price"))
        return tuple(outputs)

    def reset(self) -> None:
        super().reset()
        self._deepest = max(self.params.depths)

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bids = book.bid_levels(self._deepest)
        asks = book.ask_levels(self._deepest)
        if not bids or not asks:
            self.values = (None,) * len(self.outputs)
            return
        mid_x2 = bids[0][0] + asks[0][0]
        values: list[int | None] = []
        for depth in self.params.depths:
            if len(bids) < depth or len(asks) < depth:
                values += (None, None)
                continue
            # Distances are doubled to keep the mid an integer; the size is doubled to match.
            bid_size_x2 = 2 * sum(size for _, size in bids[:depth])
            ask_size_x2 = 2 * sum(size for _, size in asks[:depth])
            values.append(bid_size_x2 * SLOPE_SCALE // (mid_x2 - 2 * bids[depth - 1][0]))
            values.append(ask_size_x2 * SLOPE_SCALE // (2 * asks[depth - 1][0] - mid_x2))
        self.values = tuple(values)


class OrderFlowImbalance(Feature):
    """Order-flow imbalance (OFI) at the best quotes, summed over the last ``window`` book events.

    Cont, Kukanov & Stoikov, "The price impact of order book events", Journal
    of Financial Econometrics 12(1), 2014, eq. (2): between consecutive book
    states ``n-1`` and ``n`` with best bid ``(P_b, Q_b)`` and best ask
    ``(P_a, Q_a)``,

        e_n = 1{P_b,n ≥ P_b,n-1} Q_b,n − 1{P_b,n ≤ P_b,n-1} Q_b,n-1
            − 1{P_a,n ≤ P_a,n-1} Q_a,n + 1{P_a,n ≥ P_a,n-1} Q_a,n-1

    and ``ofi = Σ e_n`` over the last ``window`` book events (their time
    intervals become event counts here, which keeps the update O(1) and
    independent of clocks). Positive: net buying pressure. Fixed-point size
    units, exact; undefined until ``window`` events have an ``e_n``. An event
    that leaves a side empty restarts the window.
    """

    name = "ofi"
    version = 1
    inputs = _BOOK

    class Params(Feature.Params, frozen=True):
        window: int = 100

    params: Params

    def check_params(self) -> None:
        if self.params.window < 1:
            raise FeatureParamsError(f"feature {self.name!r}: window must be positive")

    def describe(self) -> tuple[Output, ...]:
        return (Output("ofi", 1, unit="size"),)

    def reset(self) -> None:
        super().reset()
        self._previous: tuple[int, int, int, int] | None = None
        self._contributions: deque[int] = deque()
        self._sum = 0

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bid = book.best_bid()
        ask = book.best_ask()
        if bid is None or ask is None:
            self.reset()
            return
        bid_price, bid_size = bid
        ask_price, ask_size = ask
        previous = self._previous
        self._previous = (bid_price, bid_size, ask_price, ask_size)
        if previous is None:
            return
        last_bid_price, last_bid_size, last_ask_price, last_ask_size = previous
        flow = 0
        if bid_price >= last_bid_price:
            flow += bid_size
        if bid_price <= last_bid_price:
            flow -= last_bid_size
        if ask_price <= last_ask_price:
            flow -= ask_size
        if ask_price >= last_ask_price:
            flow += last_ask_size
        contributions = self._contributions
        contributions.append(flow)
        self._sum += flow
        if len(contributions) > self.params.window:
            self._sum -= contributions.popleft()
        if len(contributions) == self.params.window:
            self.values = (self._sum,)
