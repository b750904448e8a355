"""A desk for the risk tests: two instruments, their books, a manual clock and an engine."""

from __future__ import annotations

import itertools
from decimal import Decimal

from kernel.book import L2Book
from kernel.bus import Bus
from kernel.risk import (
    OpenOrder,
    RiskConfig,
    RiskDecision,
    RiskEngine,
    StaticRiskContext,
)
from tradekernel_sdk.fixedpoint import to_fixed
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from tradekernel_sdk.types import Instrument

BTC = Instrument("binance", "BTCUSDT", 2, 5, tick=1, lot=1, base="BTC", quote="USDT")
"""Tick 0.01, lot 0.00001; the desk's book is 99.99 / 100.01 (mid 100.00)."""
ETH = Instrument("binance", "ETHUSDT", 2, 4, tick=5, lot=10, base="ETH", quote="USDT")
"""Tick 0.05, lot 0.001; the desk's book is 49.95 / 50.05 (mid 50.00)."""
SOL = Instrument("okx", "SOL-USDT", 3, 2, tick=1, lot=1, base="SOL", quote="USDT")
"""On another venue; the desk's book is 149.990 / 150.010."""

BUY, SELL = OrderSide.BUY, OrderSide.SELL
START_NS = 1_700_000_000_000_000_000


def money(text: str) -> int:
    """Return an amount of quote currency in the context's unit (10**-8)."""
    return to_fixed(text, 8)


def book(instrument: Instrument, bid: str | None, ask: str | None, size: str = "100") -> L2Book:
    """Return a one-level book (either side may be empty)."""
    levels = L2Book()
    amount = instrument.size(size)
    levels.load(
        [] if bid is None else [(instrument.price(bid), amount)],
        [] if ask is None else [(instrument.price(ask), amount)],
    )
    return levels


class ManualClock:
    """Nanoseconds that move only when a test moves them."""

    def __init__(self, now: int = START_NS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


class Desk:
    """An engine over a :class:`StaticRiskContext` with valid books for BTC, ETH and SOL."""

    def __init__(self, config: RiskConfig | None = None, *, bus: Bus | None = None) -> None:
        self.clock = ManualClock()
        self.context = StaticRiskContext()
        self.context.add_instrument(BTC, book(BTC, "99.99", "100.01"))
        self.context.add_instrument(ETH, book(ETH, "49.95", "50.05"))
        self.context.add_instrument(SOL, book(SOL, "149.99", "150.01"))
        self.halts: list[str] = []
        self.engine = RiskEngine(
            config or RiskConfig(),
            self.context,
            clock=self.clock,
            on_halt=self.halts.append,
            bus=bus,
        )
        self._ids = itertools.count(1)

    def order(
        self,
        side: OrderSide,
        quantity: str,
        price: str | None = None,
        instrument: Instrument = BTC,
        *,
        market: bool = False,
    ) -> OrderRequest:
        """Return a limit order (a market order with ``market``); sizes and prices are decimals."""
        return OrderRequest(
            client_order_id=f"o{next(self._ids)}",
            venue=instrument.venue,
            symbol=instrument.symbol,
            side=side,
            order_type=OrderType.MARKET if market else OrderType.LIMIT,
            quantity=_fixed(quantity, instrument.size_precision),
            price=None if price is None else _fixed(price, instrument.price_precision),
            time_in_force=TimeInForce.GTC,
        )

    def check(
        self,
        side: OrderSide,
        quantity: str,
        price: str | None = None,
        instrument: Instrument = BTC,
        *,
        market: bool = False,
    ) -> RiskDecision:
        """Check a new order."""
        return self.engine.check(self.order(side, quantity, price, instrument, market=market))

    def rest(
        self, side: OrderSide, quantity: str, price: str, instrument: Instrument = BTC
    ) -> OpenOrder:
        """Add a working order of ours to the context."""
        order = OpenOrder(
            client_order_id=f"r{next(self._ids)}",
            symbol=instrument.symbol,
            side=side,
            price=instrument.price(price),
            leaves_quantity=instrument.size(quantity),
        )
        self.context.add_open_order(instrument.venue, order)
        return order

    def hold(self, quantity: str, instrument: Instrument = BTC) -> None:
        """Set the instrument's signed position (a decimal, negative for short)."""
        self.context.set_position(
            instrument.venue, instrument.symbol, _fixed(quantity, instrument.size_precision)
        )


def _fixed(text: str, precision: int) -> int:
    """Convert a signed decimal string (tests write negative positions and quantities too)."""
    value = Decimal(text).scaleb(precision)
    if value != value.to_integral_value():
        raise ValueError(f"{text} has more than {precision} decimals")
    return int(value)
