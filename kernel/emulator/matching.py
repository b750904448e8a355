"""Orders placed on the emulator, matched against the replayed book by the paper venue.

The emulator feeds every replayed frame to the kernel's own venue feed on a
private bus, so it holds the same verified book a client would build. Orders
go to a :class:`~kernel.paper.PaperVenue` per symbol (created at the symbol's
first order) reading that book: takers walk the displayed levels, resting
orders wait in the queue model and fill on trades and book moves as the replay
goes on. This module keeps the venue-neutral order records, the account's
balances, and tells the venue front ends (Binance, OKX) about every change.

Balances: a limit order locks its notional (buy, in the quote asset) or its
quantity (sell, in the base asset); fills settle at the fill price, and the
fee (the paper venue's, in the quote asset) is taken from the quote asset.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kernel.bus import Bus, topics
from kernel.paper import DEFAULT_FEES, BookLookup, FeeSchedule, PaperVenue
from tradekernel_sdk.fixedpoint import from_fixed
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    CancelRequest,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.types import Instrument

__all__ = ["EmulatedOrder", "Fill", "OrderEngine", "OrderError"]


class OrderError(Exception):
    """An order the venue refuses before it reaches the book (the front end maps ``kind``)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind = kind
        """``insufficient_balance``, ``duplicate``, ``unknown_symbol`` or ``rejected``."""
        self.detail = detail


@dataclass(frozen=True)
class Fill:
    """One execution of an emulated order."""

    trade_id: int
    price: int
    quantity: int
    fee: int
    """In the quote asset, :data:`~tradekernel_sdk.orders.FEE_PRECISION` decimals."""
    maker: bool
    time_ms: int


@dataclass
class EmulatedOrder:
    """One order as the emulated venue knows it."""

    order_id: int
    client_order_id: str
    instrument: Instrument
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int | None
    created_ms: int
    updated_ms: int
    status: str = "NEW"
    """NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED or REJECTED."""
    executed: int = 0
    quote_executed: int = 0
    """Sum of price × quantity, at price plus size precision."""
    fees: int = 0
    reason: str = ""
    fills: list[Fill] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        """Return the order's symbol."""
        return self.instrument.symbol

    @property
    def open(self) -> bool:
        """Return whether the order can still trade."""
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def price_text(self, value: int | None) -> str:
        """Format a price of this order's instrument (0 when None)."""
        return from_fixed(value or 0, self.instrument.price_precision)

    def size_text(self, value: int) -> str:
        """Format a size of this order's instrument."""
        return from_fixed(value, self.instrument.size_precision)

    def quote_text(self, value: int) -> str:
        """Format a notional (price × size) at the instrument's price precision, exactly."""
        precision = self.instrument.price_precision + self.instrument.size_precision
        text = from_fixed(value, precision)
        return _trim(text, self.instrument.price_precision)


def _trim(text: str, keep: int) -> str:
    """Drop trailing fractional zeros beyond ``keep`` decimals."""
    whole, _, frac = text.partition(".")
    frac = frac[:keep] + frac[keep:].rstrip("0")
    return f"{whole}.{frac}" if frac else whole


OrderListener = Callable[[EmulatedOrder, str, Fill | None], None]
"""Called with the order, the execution type (NEW, TRADE, CANCELED, EXPIRED,
REJECTED) and the fill for TRADE."""
BalanceListener = Callable[[list[str]], None]
"""Called with the assets whose balance changed."""


class OrderEngine:
    """Places, cancels and tracks orders for one emulated account."""

    def __init__(
        self,
        bus: Bus,
        *,
        venue: str,
        market_venue: str,
        books: BookLookup,
        instrument: Callable[[str], Instrument | None],
        clock_ms: Callable[[], int],
        balances: Mapping[str, str],
        fees: FeeSchedule = DEFAULT_FEES,
    ) -> None:
        self.venue = venue
        self.fees = fees
        self._bus = bus
        self._market_venue = market_venue
        self._books = books
        self._instrument = instrument
        self._clock_ms = clock_ms
        self._venues: dict[str, PaperVenue] = {}
        self._orders: dict[int, EmulatedOrder] = {}
        self._by_internal_id: dict[str, EmulatedOrder] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self.free: dict[str, Decimal] = {asset: Decimal(v) for asset, v in balances.items()}
        self.locked: dict[str, Decimal] = dict.fromkeys(self.free, Decimal(0))
        self.order_listeners: list[OrderListener] = []
        self.balance_listeners: list[BalanceListener] = []
        self._changed_assets: set[str] = set()
        bus.subscribe(topics.orders(venue), self._on_event)

    # -- requests --------------------------------------------------------------

    def place(
        self,
        symbol: str,
        *,
        side: OrderSide,
        order_type: OrderType,
        quantity: int,
        price: int | None,
        time_in_force: TimeInForce,
        client_order_id: str,
    ) -> EmulatedOrder:
        """Place an order and match it at once; raise :class:`OrderError` when refused."""
        instrument = self._instrument(symbol)
        if instrument is None:
            raise OrderError("unknown_symbol", symbol)
        if any(o.open and o.client_order_id == client_order_id for o in self._orders.values()):
            raise OrderError("duplicate", client_order_id)
        now = self._clock_ms()
        order = EmulatedOrder(
            next(self._order_ids),
            client_order_id,
            instrument,
            side,
            order_type,
            time_in_force,
            quantity,
            price,
            now,
            now,
        )
        self._check_balance(order)
        internal_id = str(order.order_id)
        self._orders[order.order_id] = order
        self._by_internal_id[internal_id] = order
        self._venue(instrument).submit(
            OrderRequest(
                internal_id,
                self.venue,
                symbol,
                side,
                order_type,
                quantity,
                price,
                time_in_force,
            )
        )
        if order.status == "REJECTED":
            raise OrderError("rejected", order.reason)
        return order

    def cancel(self, order: EmulatedOrder) -> None:
        """Cancel a working order (the CANCELED update follows synchronously)."""
        self._venue(order.instrument).cancel(
            CancelRequest(str(order.order_id), self.venue, order.symbol)
        )

    def find(
        self, symbol: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> EmulatedOrder | None:
        """Return an order of ``symbol`` by venue id or client id (the latest with that id)."""
        if order_id is not None:
            order = self._orders.get(order_id)
            return order if order is not None and order.symbol == symbol else None
        for order in reversed(self._orders.values()):
            if order.symbol == symbol and order.client_order_id == client_order_id:
                return order
        return None

    def orders_of(self, symbol: str) -> list[EmulatedOrder]:
        """Return every order of ``symbol``, open or not, oldest first."""
        return [o for o in self._orders.values() if o.symbol == symbol]

    def open_orders(self, symbol: str | None = None) -> list[EmulatedOrder]:
        """Return the working orders, oldest first."""
        return [
            o for o in self._orders.values() if o.open and (symbol is None or o.symbol == symbol)
        ]

    # -- the paper venue -------------------------------------------------------

    def _venue(self, instrument: Instrument) -> PaperVenue:
        venue = self._venues.get(instrument.symbol)
        if venue is None:
            venue = PaperVenue(
                self._bus,
                instruments={instrument.symbol: instrument},
                venue_name=self.venue,
                market_venue=self._market_venue,
                fees=self.fees,
                books=self._books,
                register_endpoints=False,
            )
            self._venues[instrument.symbol] = venue
        return venue

    def _on_event(self, event: Any) -> None:
        order = self._by_internal_id.get(event.client_order_id)
        if order is None:
            return
        order.updated_ms = self._clock_ms()
        if isinstance(event, OrderAccepted):
            self._lock(order)
            self._notify(order, "NEW", None)
        elif isinstance(event, OrderFilled):
            fill = Fill(
                next(self._trade_ids),
                event.price,
                event.quantity,
                event.fee,
                event.liquidity is Liquidity.MAKER,
                order.updated_ms,
            )
            order.fills.append(fill)
            order.executed += event.quantity
            order.quote_executed += event.price * event.quantity
            order.fees += event.fee
            order.status = "FILLED" if event.leaves_quantity == 0 else "PARTIALLY_FILLED"
            self._settle(order, fill)
            self._notify(order, "TRADE", fill)
        elif isinstance(event, OrderCanceled):
            order.status = "CANCELED"
            self._release(order)
            self._notify(order, "CANCELED", None)
        elif isinstance(event, OrderExpired):
            order.status = "EXPIRED"
            order.reason = event.reason
            self._release(order)
            self._notify(order, "EXPIRED", None)
        elif isinstance(event, OrderRejected):
            order.status = "REJECTED"
            order.reason = event.reason
            self._notify(order, "REJECTED", None)

    def _notify(self, order: EmulatedOrder, execution: str, fill: Fill | None) -> None:
        # The order update goes out first, then the balances it changed (as venues do).
        for listener in self.order_listeners:
            listener(order, execution, fill)
        if self._changed_assets:
            assets = sorted(self._changed_assets)
            self._changed_assets.clear()
            for balance_listener in self.balance_listeners:
                balance_listener(assets)

    # -- balances --------------------------------------------------------------

    def _assets(self, order: EmulatedOrder) -> tuple[str, str]:
        base = order.instrument.base
        quote = order.instrument.quote
        for asset in (base, quote):
            self.free.setdefault(asset, Decimal(0))
            self.locked.setdefault(asset, Decimal(0))
        return base, quote

    def _decimal(self, value: int, precision: int) -> Decimal:
        return Decimal(from_fixed(value, precision))

    def _limit_notional(self, order: EmulatedOrder, quantity: int) -> Decimal:
        assert order.price is not None
        inst = order.instrument
        return self._decimal(order.price * quantity, inst.price_precision + inst.size_precision)

    def _check_balance(self, order: EmulatedOrder) -> None:
        base, quote = self._assets(order)
        size = self._decimal(order.quantity, order.instrument.size_precision)
        if order.side is OrderSide.SELL:
            needed, asset = size, base
        elif order.price is not None:
            needed, asset = self._limit_notional(order, order.quantity), quote
        else:
            needed, asset = Decimal(0), quote
        if self.free[asset] < needed or (needed == 0 and self.free[asset] <= 0):
            raise OrderError("insufficient_balance", f"{asset} free {self.free[asset]}")

    def _lock(self, order: EmulatedOrder) -> None:
        if order.order_type is OrderType.MARKET:
            return
        base, quote = self._assets(order)
        if order.side is OrderSide.SELL:
            amount, asset = self._decimal(order.quantity, order.instrument.size_precision), base
        else:
            amount, asset = self._limit_notional(order, order.quantity), quote
        self.free[asset] -= amount
        self.locked[asset] += amount
        self._balances_changed([asset])

    def _release(self, order: EmulatedOrder) -> None:
        if order.order_type is OrderType.MARKET:
            return
        base, quote = self._assets(order)
        leaves = order.quantity - order.executed
        if order.side is OrderSide.SELL:
            amount, asset = self._decimal(leaves, order.instrument.size_precision), base
        else:
            amount, asset = self._limit_notional(order, leaves), quote
        if amount:
            self.free[asset] += amount
            self.locked[asset] -= amount
            self._balances_changed([asset])

    def _settle(self, order: EmulatedOrder, fill: Fill) -> None:
        base, quote = self._assets(order)
        inst = order.instrument
        size = self._decimal(fill.quantity, inst.size_precision)
        notional = self._decimal(
            fill.price * fill.quantity, inst.price_precision + inst.size_precision
        )
        fee = self._decimal(fill.fee, FEE_PRECISION)
        limit_order = order.order_type is not OrderType.MARKET
        if order.side is OrderSide.BUY:
            reserved = self._limit_notional(order, fill.quantity) if limit_order else Decimal(0)
            self.locked[quote] -= reserved
            self.free[quote] += reserved - notional - fee
            self.free[base] += size
        else:
            if limit_order:
                self.locked[base] -= size
            else:
                self.free[base] -= size
            self.free[quote] += notional - fee
        self._balances_changed([base, quote])

    def _balances_changed(self, assets: list[str]) -> None:
        self._changed_assets.update(assets)
