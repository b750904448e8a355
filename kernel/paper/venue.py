"""A simulated exchange that matches orders against replayed market data.

The venue never changes the market: it reads the real book (through a lookup
into the feed's books, or its own books built from the snapshots and deltas on
the bus) and decides what a real order would plausibly have got.

Time. A request takes effect ``latency_ns`` after it arrives, on market time:
the venue stamps it with ``clock()`` (by default the ``ts_recv`` of the last
market event it saw) and applies it at the first market event whose ``ts_recv``
reaches that time, against the book as it stands after that event, before the
event itself is matched against resting orders. :meth:`PaperVenue.poll` applies
what is due by ``clock()`` without waiting for market data. Nothing depends on
wall time, so a replay at full speed gives the same fills every run.

Taking. Market and marketable limit orders walk the opposite side best level
first, never past the limit price, paying the taker fee, one fill per level.
What a simulated order takes from a level is remembered with the level's size
at the time, and is not available to another simulated order until the level's
size changes (the real market then tells us what is left). A market order takes
what the book shows and the rest expires; IOC expires its remainder; FOK fills
completely or expires without a fill. Venue-initiated ends are reported as
:class:`~tradekernel_sdk.orders.OrderExpired`, client cancels as
:class:`~tradekernel_sdk.orders.OrderCanceled`.

Resting (the queue model). A resting order joins behind the whole displayed
size at its price, ``queue_ahead``. Only evidence moves it forward: a trade at
its price by an aggressor on the other side uses up ``queue_ahead`` first and
fills the order with the rest, and a level that shrinks below ``queue_ahead``
caps it (the orders that left must have been ahead); cancellations are assumed
to come from behind. A trade strictly through its price fills it with up to the
traded size, and a book whose opposite side moves through its price fills it
with up to the displayed crossing size. Resting fills are at the order's own
price and pay the maker fee. Simulated orders share one trade's size in price
then time priority, each behind its own queue.

Fees are ``notional * bps / 10_000`` in the quote currency at
:data:`~tradekernel_sdk.orders.FEE_PRECISION` decimals, rounded up (a rebate,
a negative fee, rounds towards zero): never kinder than the real venue.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

import msgspec

from kernel.book import L2Book
from kernel.bus import Bus, topics
from tradekernel_sdk import codec
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    CancelRejected,
    CancelRequest,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.types import (
    AggressorSide,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    Trade,
)

__all__ = [
    "DEFAULT_FEES",
    "BookLookup",
    "Clock",
    "FeeSchedule",
    "PaperVenue",
    "RestingOrder",
    "VenueOrderRecord",
    "VenueStore",
]

Clock = Callable[[], int]
"""Returns the current time in nanoseconds."""
BookLookup = Callable[[str], L2Book | None]
"""Returns the market's live book for a symbol, or None when there is none."""

_STATE_VERSION = 1
# Consumed liquidity per level: price -> (level size when consumed, size consumed).
_Consumed = dict[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker fee rates in basis points; a negative rate is a rebate."""

    maker_bps: Decimal | int = 0
    taker_bps: Decimal | int = 0


DEFAULT_FEES = FeeSchedule(maker_bps=10, taker_bps=10)
"""Binance spot's base tier: 0.1% each way."""


class VenueStore(Protocol):
    """Where the paper venue keeps what it did (a :class:`~kernel.journal.Journal`)."""

    def append(self, kind: str, payload: Any, ts_ns: int | None = None) -> int:
        """Append one record."""
        ...

    def flush(self) -> int:
        """Hand buffered records to the operating system."""
        ...


class VenueOrderRecord(msgspec.Struct):
    """What the venue knows of one order: its last status and every fill."""

    status: str = "new"
    venue_order_id: str = ""
    filled_quantity: int = 0
    fills: list[OrderFilled] = msgspec.field(default_factory=list)
    reason: str = ""

    @property
    def closed(self) -> bool:
        """Return whether the order can no longer trade."""
        return self.status in ("filled", "canceled", "expired", "rejected")

    def apply(self, event: OrderEvent) -> None:
        """Update the record with one of the venue's events about the order."""
        if isinstance(event, OrderFilled):
            self.fills.append(event)
            self.filled_quantity += event.quantity
            self.status = "filled" if event.leaves_quantity == 0 else "partially_filled"
        elif isinstance(event, OrderCanceled):
            self.status = "canceled"
        elif isinstance(event, OrderExpired):
            self.status, self.reason = "expired", event.reason
        elif isinstance(event, OrderRejected):
            self.status, self.reason = "rejected", event.reason


class RestingOrder(msgspec.Struct, array_like=True):
    """A working order in the simulated book; part of the venue's saved state."""

    request: OrderRequest
    venue_order_id: str
    seq: int
    """Time priority: lower arrived first."""
    leaves: int
    queue_ahead: int
    """Displayed size still assumed ahead of this order at its price."""


class _Pending(msgspec.Struct, array_like=True, order=True):
    due: int
    seq: int
    action: OrderRequest | CancelRequest


class _MarketState(msgspec.Struct, array_like=True):
    symbol: str
    status: BookState | None
    consumed_bids: _Consumed
    consumed_asks: _Consumed


class _VenueState(msgspec.Struct, array_like=True):
    version: int
    venue_name: str
    now: int
    next_seq: int
    next_order_id: int
    next_fill_id: int
    counters: dict[str, int]
    orders: list[RestingOrder]
    pending: list[_Pending]
    client_ids: list[str]
    markets: list[_MarketState]


_state_decoder = msgspec.msgpack.Decoder(_VenueState)
_COUNTERS = ("orders", "accepted", "fills", "rejects", "cancels", "cancel_rejects", "expired")


def _fee_rate(bps: Decimal | int, instrument: Instrument) -> Fraction:
    """Return the fee per unit of ``price * size`` (both fixed-point), in fee units."""
    scale: int = 10 ** (instrument.price_precision + instrument.size_precision)
    fee_scale: int = 10**FEE_PRECISION
    return Fraction(bps) * Fraction(fee_scale, scale * 10_000)


def _levels(book: L2Book, asks: bool) -> Iterator[Level]:
    """Yield one side's levels best first, sorting only as deep as the caller reads."""
    depth = 8
    seen = 0
    while True:
        levels = book.ask_levels(depth) if asks else book.bid_levels(depth)
        yield from levels[seen:]
        if len(levels) < depth:
            return
        seen = len(levels)
        depth *= 8


def _available(consumed: _Consumed, price: int, size: int) -> int:
    entry = consumed.get(price)
    if entry is None or entry[0] != size:
        return size
    return size - entry[1]


def _consume(consumed: _Consumed, price: int, size: int, quantity: int) -> None:
    entry = consumed.get(price)
    if entry is None or entry[0] != size:
        consumed[price] = (size, quantity)
    else:
        consumed[price] = (size, entry[1] + quantity)


class _Market:
    """What the venue keeps per instrument."""

    __slots__ = (
        "book",
        "consumed_asks",
        "consumed_bids",
        "instrument",
        "maker_rate",
        "orders",
        "status",
        "taker_rate",
    )

    def __init__(self, instrument: Instrument, fees: FeeSchedule) -> None:
        self.instrument = instrument
        self.book: L2Book | None = None
        self.status: BookState | None = None
        self.consumed_bids: _Consumed = {}
        self.consumed_asks: _Consumed = {}
        self.orders: list[RestingOrder] = []
        self.maker_rate = _fee_rate(fees.maker_bps, instrument)
        self.taker_rate = _fee_rate(fees.taker_bps, instrument)

    def prune_consumed(self, book: L2Book) -> None:
        """Forget consumption on levels whose size has changed since."""
        for consumed, levels in ((self.consumed_bids, book.bids), (self.consumed_asks, book.asks)):
            stale = [p for p, (size, _) in consumed.items() if levels.get(p) != size]
            for price in stale:
                del consumed[price]


class PaperVenue:
    """A simulated exchange for the instruments in ``instruments`` (keyed by symbol).

    Market data for ``market_venue`` drives it; order events go out on
    ``topics.orders(venue_name)``. Requests arrive through :meth:`submit` and
    :meth:`cancel` or the bus endpoints ``paper.submit`` / ``paper.cancel``.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        instruments: Mapping[str, Instrument],
        venue_name: str = "paper",
        market_venue: str = "binance",
        fees: FeeSchedule = DEFAULT_FEES,
        latency_ns: int = 0,
        clock: Clock | None = None,
        books: BookLookup | None = None,
        register_endpoints: bool = True,
        store: VenueStore | None = None,
    ) -> None:
        if latency_ns < 0:
            raise ValueError("latency_ns must be >= 0")
        self.venue_name = venue_name
        self.market_venue = market_venue
        self.fees = fees
        self.latency_ns = latency_ns
        self._bus = bus
        self._store = store
        self._topic = topics.orders(venue_name)
        self._clock: Clock = clock if clock is not None else self._market_time
        self._books = books
        self._markets = {symbol: _Market(inst, fees) for symbol, inst in instruments.items()}
        self._live: dict[str, RestingOrder] = {}
        self._client_ids: set[str] = set()
        self._pending: list[_Pending] = []
        self._now = 0
        self._busy = False
        self._next_seq = 1
        self._next_order_id = 1
        self._next_fill_id = 1
        self.orders = 0
        """Order requests received."""
        self.accepted = 0
        self.fills = 0
        self.rejects = 0
        self.cancels = 0
        """Orders cancelled at the client's request."""
        self.cancel_rejects = 0
        self.expired = 0

        self._subscriptions: list[tuple[str, Callable[[Any], None]]] = []
        for symbol in self._markets:
            self._subscriptions += [
                (topics.snapshot(market_venue, symbol), self._on_snapshot),
                (topics.book(market_venue, symbol), self._on_delta),
                (topics.book_status(market_venue, symbol), self._on_status),
                (topics.trade(market_venue, symbol), self._on_trade),
            ]
        for pattern, handler in self._subscriptions:
            bus.subscribe(pattern, handler)
        self._endpoints: list[str] = []
        if register_endpoints:
            self._endpoints = [
                topics.submit_endpoint(venue_name),
                topics.cancel_endpoint(venue_name),
            ]
            bus.register_endpoint(self._endpoints[0], self.submit)
            bus.register_endpoint(self._endpoints[1], self.cancel)

    # -- requests --------------------------------------------------------------

    def submit(self, request: OrderRequest) -> None:
        """Queue a new order; it takes effect ``latency_ns`` from now."""
        self.orders += 1
        self._enqueue(request)

    def cancel(self, request: CancelRequest) -> None:
        """Queue a cancel; it takes effect ``latency_ns`` from now."""
        self._enqueue(request)

    def poll(self) -> None:
        """Apply every request due by ``clock()`` without waiting for market data."""
        if not self._busy:
            self._drive(self._clock(), None)

    def close(self) -> None:
        """Unsubscribe from the bus and release the endpoints."""
        for pattern, handler in self._subscriptions:
            self._bus.unsubscribe(pattern, handler)
        self._subscriptions = []
        for name in self._endpoints:
            self._bus.deregister_endpoint(name)
        self._endpoints = []

    # -- inspection ------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[RestingOrder]:
        """Return copies of the working orders, in time priority."""
        found = [
            msgspec.structs.replace(order)
            for market in self._markets.values()
            for order in market.orders
            if symbol is None or order.request.symbol == symbol
        ]
        found.sort(key=lambda order: order.seq)
        return found

    @property
    def pending(self) -> int:
        """Return how many requests are still in flight to the venue."""
        return len(self._pending)

    @property
    def now(self) -> int:
        """Return the venue's market time: the latest ``ts_recv`` it has seen."""
        return self._now

    def counters(self) -> dict[str, int]:
        """Return every counter by name."""
        return {name: getattr(self, name) for name in _COUNTERS}

    # -- persistence -----------------------------------------------------------

    def state(self) -> bytes:
        """Return the venue's order state as MessagePack (books are not included)."""
        state = _VenueState(
            version=_STATE_VERSION,
            venue_name=self.venue_name,
            now=self._now,
            next_seq=self._next_seq,
            next_order_id=self._next_order_id,
            next_fill_id=self._next_fill_id,
            counters=self.counters(),
            orders=[order for market in self._markets.values() for order in market.orders],
            pending=sorted(self._pending),
            client_ids=sorted(self._client_ids),
            markets=[
                _MarketState(symbol, m.status, m.consumed_bids, m.consumed_asks)
                for symbol, m in self._markets.items()
            ],
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        """Replace the order state with one written by :meth:`state`."""
        state = _state_decoder.decode(data)
        if state.version != _STATE_VERSION:
            raise ValueError(f"unsupported paper venue state version {state.version}")
        if state.venue_name != self.venue_name:
            raise ValueError(f"state is for venue {state.venue_name!r}, not {self.venue_name!r}")
        unknown = {o.request.symbol for o in state.orders} - self._markets.keys()
        if unknown:
            raise ValueError(f"state has orders for unknown instruments {sorted(unknown)}")
        self._now = state.now
        self._next_seq = state.next_seq
        self._next_order_id = state.next_order_id
        self._next_fill_id = state.next_fill_id
        for name in _COUNTERS:
            setattr(self, name, state.counters.get(name, 0))
        for market in self._markets.values():
            market.orders = []
            market.status = None
            market.consumed_bids = {}
            market.consumed_asks = {}
        for saved in state.markets:
            market_or_none = self._markets.get(saved.symbol)
            if market_or_none is not None:
                market_or_none.status = saved.status
                market_or_none.consumed_bids = saved.consumed_bids
                market_or_none.consumed_asks = saved.consumed_asks
        self._live = {}
        for order in sorted(state.orders, key=lambda o: o.seq):
            self._markets[order.request.symbol].orders.append(order)
            self._live[order.request.client_order_id] = order
        self._pending = list(state.pending)
        heapq.heapify(self._pending)
        self._client_ids = set(state.client_ids)

    # -- market data -----------------------------------------------------------

    def _market_time(self) -> int:
        return self._now

    def _on_snapshot(self, snapshot: BookSnapshot) -> None:
        market = self._markets.get(snapshot.symbol)
        if market is None:
            return
        if self._books is None:
            if market.book is None:
                market.book = L2Book()
            market.book.load(snapshot.bids, snapshot.asks, snapshot.sequence)
        self._drive(snapshot.ts_recv, lambda: self._book_changed(market, None))

    def _on_delta(self, delta: BookDelta) -> None:
        market = self._markets.get(delta.symbol)
        if market is None:
            return
        if self._books is None:
            if market.book is None:
                return  # no snapshot yet: nothing to apply the change to
            market.book.apply(delta.bids, delta.asks)
            market.book.sequence = delta.sequence
        self._drive(delta.ts_recv, lambda: self._book_changed(market, delta))

    def _on_status(self, status: BookStatus) -> None:
        market = self._markets.get(status.symbol)
        if market is None:
            return
        market.status = status.state
        self._drive(status.ts_recv, None)

    def _on_trade(self, trade: Trade) -> None:
        market = self._markets.get(trade.symbol)
        if market is None:
            return
        self._drive(trade.ts_recv, lambda: self._trade_resting(market, trade))

    def _drive(self, ts: int, work: Callable[[], None] | None) -> None:
        """Advance market time to ``ts``, apply due requests, then ``work``."""
        self._now = max(self._now, ts)
        now = self._now
        self._busy = True
        try:
            self._apply_due(now)
            if work is not None:
                work()
                # Requests sent with no latency by handlers of the events just published.
                self._apply_due(now)
        finally:
            self._busy = False

    def _book(self, market: _Market) -> L2Book | None:
        if self._books is not None:
            return self._books(market.instrument.symbol)
        return market.book

    def _tradable(self, market: _Market) -> bool:
        return market.status is None or market.status is BookState.VALID

    # -- request processing ----------------------------------------------------

    def _enqueue(self, action: OrderRequest | CancelRequest) -> None:
        now = self._clock()
        heapq.heappush(self._pending, _Pending(now + self.latency_ns, self._next_seq, action))
        self._next_seq += 1
        if not self._busy:
            self._drive(now, None)

    def _apply_due(self, now: int) -> None:
        pending = self._pending
        while pending and pending[0].due <= now:
            item = heapq.heappop(pending)
            if isinstance(item.action, OrderRequest):
                self._apply_order(item.action, item.seq, now)
            else:
                self._apply_cancel(item.action, now)

    def _reject_reason(
        self, request: OrderRequest, market: _Market | None, book: L2Book | None
    ) -> str | None:
        if request.venue != self.venue_name:
            return f"wrong venue {request.venue!r}"
        if request.client_order_id in self._client_ids:
            return "duplicate client_order_id"
        if market is None:
            return "unknown instrument"
        instrument = market.instrument
        if request.quantity <= 0:
            return "quantity must be positive"
        if request.quantity % instrument.lot:
            return "quantity is not a multiple of the lot size"
        if request.order_type is OrderType.LIMIT:
            if request.price is None:
                return "limit order without a price"
            if request.price <= 0:
                return "price must be positive"
            if request.price % instrument.tick:
                return "price is not on the tick"
        else:
            if request.price is not None:
                return "market order with a price"
            if request.time_in_force is TimeInForce.POST_ONLY:
                return "market order cannot be post-only"
        if book is None:
            return "no book for instrument"
        if not self._tradable(market):
            state = market.status.value if market.status is not None else "unknown"
            return f"book {state}"
        if request.time_in_force is TimeInForce.POST_ONLY and self._takeable(
            market, book, request.side, request.price, 1
        ):
            return "post-only order would take liquidity"
        return None

    def _apply_order(self, request: OrderRequest, seq: int, now: int) -> None:
        market = self._markets.get(request.symbol)
        book = self._book(market) if market is not None else None
        reason = self._reject_reason(request, market, book)
        if reason is not None:
            self.rejects += 1
            self._publish(
                OrderRejected(
                    request.client_order_id, "", request.venue, request.symbol, now, reason
                )
            )
            return
        assert market is not None and book is not None
        self._client_ids.add(request.client_order_id)
        venue_order_id = str(self._next_order_id)
        self._next_order_id += 1
        self.accepted += 1
        if self._store is not None:
            self._store.append("order", [codec.encode(request), venue_order_id, seq], now)
        self._publish(
            OrderAccepted(
                request.client_order_id, venue_order_id, self.venue_name, request.symbol, now
            )
        )
        order = RestingOrder(request, venue_order_id, seq, request.quantity, 0)
        tif = request.time_in_force
        if tif is TimeInForce.FOK and not self._takeable(
            market, book, request.side, request.price, request.quantity
        ):
            self._expire(order, now, "fill-or-kill: not enough liquidity")
            return
        if tif is not TimeInForce.POST_ONLY:
            self._take(market, book, order, now)
        if order.leaves == 0:
            return
        if request.order_type is OrderType.MARKET:
            self._expire(order, now, "market order: not enough liquidity")
        elif tif is TimeInForce.IOC:
            self._expire(order, now, "immediate-or-cancel: remainder")
        else:
            same_side = book.bids if request.side is OrderSide.BUY else book.asks
            assert request.price is not None
            order.queue_ahead = same_side.get(request.price, 0)
            market.orders.append(order)
            self._live[request.client_order_id] = order

    def _apply_cancel(self, request: CancelRequest, now: int) -> None:
        order = self._live.get(request.client_order_id)
        if order is None or request.venue != self.venue_name:
            reason = (
                "order is not working"
                if request.client_order_id in self._client_ids
                else "unknown order"
            )
            self.cancel_rejects += 1
            self._publish(
                CancelRejected(
                    request.client_order_id, "", request.venue, request.symbol, now, reason
                )
            )
            return
        self._close(order)
        self.cancels += 1
        self._publish(
            OrderCanceled(
                request.client_order_id,
                order.venue_order_id,
                self.venue_name,
                order.request.symbol,
                now,
            )
        )

    # -- matching --------------------------------------------------------------

    def _takeable(
        self, market: _Market, book: L2Book, side: OrderSide, limit: int | None, wanted: int
    ) -> bool:
        """Return whether ``wanted`` can be taken from the opposite side within ``limit``."""
        buy = side is OrderSide.BUY
        consumed = market.consumed_asks if buy else market.consumed_bids
        total = 0
        for price, size in _levels(book, asks=buy):
            if limit is not None and (price > limit if buy else price < limit):
                break
            total += _available(consumed, price, size)
            if total >= wanted:
                return True
        return False

    def _take(self, market: _Market, book: L2Book, order: RestingOrder, now: int) -> None:
        """Fill ``order`` as taker from the opposite side, level by level."""
        request = order.request
        buy = request.side is OrderSide.BUY
        consumed = market.consumed_asks if buy else market.consumed_bids
        limit = request.price
        for price, size in _levels(book, asks=buy):
            if limit is not None and (price > limit if buy else price < limit):
                break
            quantity = min(_available(consumed, price, size), order.leaves)
            if quantity <= 0:
                continue
            _consume(consumed, price, size, quantity)
            self._fill(market, order, price, quantity, liquidity=Liquidity.TAKER, now=now)
            if order.leaves == 0:
                break

    def _book_changed(self, market: _Market, delta: BookDelta | None) -> None:
        """Update queues after a book change and fill resting orders it crossed."""
        book = self._book(market)
        if book is None:
            return
        if delta is None:
            market.prune_consumed(book)
        else:
            for consumed, levels, changes in (
                (market.consumed_bids, book.bids, delta.bids),
                (market.consumed_asks, book.asks, delta.asks),
            ):
                if not consumed:
                    continue
                for price, _ in changes:
                    entry = consumed.get(price)
                    if entry is not None and levels.get(price) != entry[0]:
                        del consumed[price]
        if not market.orders or not self._tradable(market):
            return
        for order in market.orders:
            levels = book.bids if order.request.side is OrderSide.BUY else book.asks
            assert order.request.price is not None
            order.queue_ahead = min(order.queue_ahead, levels.get(order.request.price, 0))
        now = self._now
        for buy in (True, False):
            resting = self._by_priority(market, OrderSide.BUY if buy else OrderSide.SELL)
            if not resting:
                continue
            best = book.best_ask_price() if buy else book.best_bid_price()
            top = resting[0].request.price
            assert top is not None
            if best is None or (best > top if buy else best < top):
                continue
            consumed = market.consumed_asks if buy else market.consumed_bids
            for order in resting:
                limit = order.request.price
                assert limit is not None
                for price, size in _levels(book, asks=buy):
                    if price > limit if buy else price < limit:
                        break
                    quantity = min(_available(consumed, price, size), order.leaves)
                    if quantity <= 0:
                        continue
                    _consume(consumed, price, size, quantity)
                    self._fill(market, order, limit, quantity, liquidity=Liquidity.MAKER, now=now)
                    if order.leaves == 0:
                        break

    def _trade_resting(self, market: _Market, trade: Trade) -> None:
        """Fill resting orders that a public trade reached, behind their queues."""
        if not market.orders or not self._tradable(market):
            return
        now = self._now
        for side, against in (
            (OrderSide.BUY, AggressorSide.BUY),
            (OrderSide.SELL, AggressorSide.SELL),
        ):
            used = 0
            for order in self._by_priority(market, side):
                price = order.request.price
                assert price is not None
                if side is OrderSide.BUY:
                    if price < trade.price:
                        break
                    through = price > trade.price
                else:
                    if price > trade.price:
                        break
                    through = price < trade.price
                if through:
                    order.queue_ahead = 0
                    available = trade.size - used
                else:
                    if trade.aggressor is against:
                        continue  # a same-side aggressor took the other side's book
                    ahead = order.queue_ahead
                    order.queue_ahead = max(0, ahead - trade.size)
                    available = trade.size - ahead - used
                quantity = min(available, order.leaves)
                if quantity > 0:
                    used += quantity
                    self._fill(market, order, price, quantity, liquidity=Liquidity.MAKER, now=now)

    def _by_priority(self, market: _Market, side: OrderSide) -> list[RestingOrder]:
        orders = [o for o in market.orders if o.request.side is side]
        if side is OrderSide.BUY:
            orders.sort(key=lambda o: (-(o.request.price or 0), o.seq))
        else:
            orders.sort(key=lambda o: (o.request.price or 0, o.seq))
        return orders

    def _fill(
        self,
        market: _Market,
        order: RestingOrder,
        price: int,
        quantity: int,
        *,
        liquidity: Liquidity,
        now: int,
    ) -> None:
        order.leaves -= quantity
        if order.leaves == 0 and order.request.client_order_id in self._live:
            self._close(order)
        rate = market.maker_rate if liquidity is Liquidity.MAKER else market.taker_rate
        # Ceiling division: fees round up, rebates towards zero.
        fee = -((-price * quantity * rate.numerator) // rate.denominator)
        fill_id = str(self._next_fill_id)
        self._next_fill_id += 1
        self.fills += 1
        request = order.request
        self._publish(
            OrderFilled(
                request.client_order_id,
                order.venue_order_id,
                self.venue_name,
                request.symbol,
                now,
                fill_id,
                price,
                quantity,
                order.leaves,
                fee,
                liquidity,
            )
        )

    def _expire(self, order: RestingOrder, now: int, reason: str) -> None:
        self.expired += 1
        request = order.request
        self._publish(
            OrderExpired(
                request.client_order_id,
                order.venue_order_id,
                self.venue_name,
                request.symbol,
                now,
                reason,
            )
        )

    def _close(self, order: RestingOrder) -> None:
        del self._live[order.request.client_order_id]
        self._markets[order.request.symbol].orders.remove(order)

    def _publish(self, event: OrderEvent) -> None:
        if self._store is not None:
            # What the venue did is on its disk before anyone hears of it.
            self._store.append("event", codec.encode(event), event.ts_event)
            self._store.flush()
        self._bus.publish(self._topic, event)

    # -- restart -----------------------------------------------------------------

    def recover(self, records: Iterable[tuple[str, Any]]) -> dict[str, VenueOrderRecord]:
        """Rebuild the venue from its store's ``(kind, payload)`` records; return every order.

        Working orders are reinstated with what is left of them; their queue
        position is not kept (they rejoin at the front of their level).
        Requests that were still in flight inside the latency window when the
        process stopped never took effect and are not known.
        """
        requests: dict[str, tuple[OrderRequest, str, int]] = {}
        report: dict[str, VenueOrderRecord] = {}
        for kind, payload in records:
            if kind == "order":
                request = codec.decode(payload[0])
                requests[request.client_order_id] = (request, payload[1], payload[2])
                record = report.setdefault(request.client_order_id, VenueOrderRecord())
                record.venue_order_id = payload[1]
                self._next_order_id = max(self._next_order_id, int(payload[1]) + 1)
                self._next_seq = max(self._next_seq, payload[2] + 1)
            elif kind == "event":
                event = codec.decode(payload)
                report.setdefault(event.client_order_id, VenueOrderRecord()).apply(event)
                if isinstance(event, OrderFilled):
                    self._next_fill_id = max(self._next_fill_id, int(event.fill_id) + 1)
                    self.fills += 1
                self._now = max(self._now, event.ts_event)
            else:
                raise ValueError(f"unknown paper venue record kind {kind!r}")
        self._client_ids = set(requests) | set(report)
        for client_order_id, (request, venue_order_id, seq) in requests.items():
            known = report[client_order_id]
            if known.closed:
                continue
            order = RestingOrder(
                request, venue_order_id, seq, request.quantity - known.filled_quantity, 0
            )
            self._markets[request.symbol].orders.append(order)
            self._live[client_order_id] = order
        self.orders = self.accepted = len(requests)
        self.rejects = sum(1 for record in report.values() if record.status == "rejected")
        return report
