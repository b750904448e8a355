"""Property: whatever the engine approves, a simulated account never breaches a limit.

The simulation: an approved order either fills completely at once at its
price (market orders always do, at the best price they take) or rests as a
working order; later steps fill a working order completely at its price or
cancel it. Positions are marked at the (fixed) mid. The context reports gross
exposure as positions at mid plus working orders at the larger of their price
and the mid, as ``RiskContext.gross_exposure`` asks. After every step no
configured limit is breached.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.risk import (
    DenialReason,
    InstrumentLimits,
    OpenOrder,
    RiskConfig,
    RiskEngine,
    StaticRiskContext,
)
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType
from tradekernel_sdk.types import Instrument

from .support import BTC, ETH, ManualClock, book

MAX_POSITION = {"BTCUSDT": Decimal("5"), "ETHUSDT": Decimal("20")}
MIN_NOTIONAL = Decimal("5")
MAX_NOTIONAL = Decimal("300")
MAX_GROSS = Decimal("800")
MAX_OPEN_INSTRUMENT = 3
MAX_OPEN_VENUE = 4
INSTRUMENTS = (BTC, ETH)
MID = {"BTCUSDT": BTC.price("100.00"), "ETHUSDT": ETH.price("50.00")}
UNIT = {"BTCUSDT": BTC.size("0.01"), "ETHUSDT": ETH.size("0.1")}

CONFIG = RiskConfig(
    defaults=InstrumentLimits(
        min_order_notional=MIN_NOTIONAL,
        max_order_notional=MAX_NOTIONAL,
        max_open_orders=MAX_OPEN_INSTRUMENT,
        price_band_bps=200,
    ),
    instruments={
        f"binance.{symbol}": InstrumentLimits(max_position=limit)
        for symbol, limit in MAX_POSITION.items()
    },
    max_gross_exposure=MAX_GROSS,
    max_open_orders_per_venue=MAX_OPEN_VENUE,
)


@dataclass(frozen=True)
class Submit:
    instrument: int
    side: OrderSide
    units: int
    ticks_from_mid: int | None  # None: a market order
    fill_now: bool


@dataclass(frozen=True)
class Fill:
    index: int


@dataclass(frozen=True)
class Cancel:
    index: int


submits = st.builds(
    Submit,
    instrument=st.integers(0, 1),
    side=st.sampled_from(OrderSide),
    units=st.integers(1, 400),
    ticks_from_mid=st.none() | st.integers(-300, 300),
    fill_now=st.booleans(),
)
steps = st.lists(
    st.one_of(
        submits,
        submits,
        st.builds(Fill, st.integers(0, 10)),
        st.builds(Cancel, st.integers(0, 10)),
    ),
    max_size=60,
)


class Account:
    """Positions and working orders, kept in a StaticRiskContext."""

    def __init__(self) -> None:
        self.context = StaticRiskContext()
        self.context.add_instrument(BTC, book(BTC, "99.99", "100.01"))
        self.context.add_instrument(ETH, book(ETH, "49.95", "50.05"))
        self.engine = RiskEngine(CONFIG, self.context, clock=ManualClock())
        self.ids = itertools.count()
        self.instruments = {instrument.symbol: instrument for instrument in INSTRUMENTS}

    def position(self, symbol: str) -> int:
        return self.context.position("binance", symbol)

    def fill(self, symbol: str, side: OrderSide, quantity: int) -> None:
        signed = quantity if side is OrderSide.BUY else -quantity
        self.context.set_position("binance", symbol, self.position(symbol) + signed)
        self.report_exposure()

    def working(self) -> list[OpenOrder]:
        return list(self.context.open_orders("binance", None))

    def report_exposure(self) -> None:
        """Set the context's gross exposure: positions at mid, working orders conservatively."""
        total = Fraction(0)
        for symbol, instrument in self.instruments.items():
            total += self._value(instrument, abs(self.position(symbol)), MID[symbol])
        for order in self.working():
            instrument = self.instruments[order.symbol]
            price = max(order.price, MID[order.symbol])
            total += self._value(instrument, order.leaves_quantity, price)
        self.context.gross_exposure_value = -(-total.numerator * 10**8 // total.denominator)

    def filled_exposure(self) -> Fraction:
        """Return the exposure actually held, marked at mid, in quote currency."""
        return sum(
            (
                self._value(instrument, abs(self.position(symbol)), MID[symbol])
                for symbol, instrument in self.instruments.items()
            ),
            Fraction(0),
        )

    @staticmethod
    def _value(instrument: Instrument, size: int, price: int) -> Fraction:
        return Fraction(
            size * price, 10 ** (instrument.price_precision + instrument.size_precision)
        )

    def submit(self, step: Submit) -> None:
        instrument = INSTRUMENTS[step.instrument]
        symbol = instrument.symbol
        quantity = step.units * UNIT[symbol]
        if step.ticks_from_mid is None:
            request = OrderRequest(
                f"o{next(self.ids)}", "binance", symbol, step.side, OrderType.MARKET, quantity
            )
        else:
            price = MID[symbol] + step.ticks_from_mid * instrument.tick
            request = OrderRequest(
                f"o{next(self.ids)}",
                "binance",
                symbol,
                step.side,
                OrderType.LIMIT,
                quantity,
                price=price,
            )
        if not self.engine.check(request).approved:
            return
        own_book = self.context.book("binance", symbol)
        assert own_book is not None
        if request.price is None:
            best = (
                own_book.best_ask_price if step.side is OrderSide.BUY else own_book.best_bid_price
            )
            fill_price = best()
            assert fill_price is not None
        else:
            fill_price = request.price
        notional = Fraction(
            fill_price * quantity,
            10 ** (instrument.price_precision + instrument.size_precision),
        )
        assert MIN_NOTIONAL <= notional <= MAX_NOTIONAL, (request, notional)
        if request.price is None or step.fill_now:
            self.fill(symbol, step.side, quantity)
        else:
            self.context.add_open_order(
                "binance",
                OpenOrder(request.client_order_id, symbol, step.side, fill_price, quantity),
            )
            self.report_exposure()

    def fill_working(self, index: int) -> None:
        working = self.working()
        if working:
            order = working[index % len(working)]
            self.context.remove_open_order("binance", order.client_order_id)
            self.fill(order.symbol, order.side, order.leaves_quantity)

    def cancel_working(self, index: int) -> None:
        working = self.working()
        if working:
            order = working[index % len(working)]
            self.context.remove_open_order("binance", order.client_order_id)
            self.report_exposure()

    def assert_within_limits(self) -> None:
        for symbol, instrument in self.instruments.items():
            limit = int(MAX_POSITION[symbol].scaleb(instrument.size_precision))
            assert abs(self.position(symbol)) <= limit, (symbol, self.position(symbol))
            orders = self.context.open_orders("binance", symbol)
            assert len(orders) <= MAX_OPEN_INSTRUMENT
            bids = [order.price for order in orders if order.side is OrderSide.BUY]
            asks = [order.price for order in orders if order.side is OrderSide.SELL]
            assert not bids or not asks or max(bids) < min(asks), "own orders crossed"
        assert len(self.working()) <= MAX_OPEN_VENUE
        assert self.filled_exposure() <= MAX_GROSS, float(self.filled_exposure())


@settings(max_examples=300, deadline=None)
@given(steps)
def test_approved_orders_never_breach_a_configured_limit(
    actions: list[Submit | Fill | Cancel],
) -> None:
    account = Account()
    for action in actions:
        if isinstance(action, Submit):
            account.submit(action)
        elif isinstance(action, Fill):
            account.fill_working(action.index)
        else:
            account.cancel_working(action.index)
        account.assert_within_limits()


def test_the_simulation_reaches_every_limit() -> None:
    """Guard the property against passing vacuously: a long random run meets every limit."""
    rng = random.Random(20240808)
    account = Account()
    for _ in range(5_000):
        roll = rng.random()
        if roll < 0.9:
            account.submit(
                Submit(
                    instrument=rng.randrange(2),
                    side=rng.choice(list(OrderSide)),
                    units=rng.randint(1, 400),
                    ticks_from_mid=None if rng.random() < 0.2 else rng.randint(-300, 300),
                    fill_now=rng.random() < 0.3,
                )
            )
        elif roll < 0.95:
            account.fill_working(rng.randrange(10))
        else:
            account.cancel_working(rng.randrange(10))
        account.assert_within_limits()
    denials = account.engine.denials
    assert account.engine.approvals > 100
    for reason in (
        DenialReason.PRICE_BAND,
        DenialReason.NOTIONAL_BELOW_MIN,
        DenialReason.NOTIONAL_ABOVE_MAX,
        DenialReason.MAX_OPEN_ORDERS_INSTRUMENT,
        DenialReason.MAX_OPEN_ORDERS_VENUE,
        DenialReason.SELF_TRADE,
        DenialReason.MAX_POSITION,
        DenialReason.MAX_GROSS_EXPOSURE,
    ):
        assert denials[reason] > 0, (reason, denials)
