"""Positions and PnL in exact integers.

A position keeps its open lots first in, first out. Closing quantity is matched
against the oldest lots, so realised PnL is a sum of ``(exit - entry) * size``
products: integers at the instrument's price + size precision, with no
division and so no rounding. Fees are kept apart, at
:data:`~tradekernel_sdk.orders.FEE_PRECISION`.

Portfolio totals add instruments of different precisions, so they are
expressed at :data:`MONEY_PRECISION` decimals, to which every instrument's
notional scales up exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tradekernel_sdk.orders import FEE_PRECISION, OrderSide
from tradekernel_sdk.types import Instrument

__all__ = ["MONEY_PRECISION", "Portfolio", "PortfolioSnapshot", "Position", "to_money"]

MONEY_PRECISION = 18
"""Decimals of portfolio-level amounts (quote currency)."""


_SCALES: tuple[int, ...] = tuple(10**exponent for exponent in range(MONEY_PRECISION + 1))


def to_money(value: int, precision: int) -> int:
    """Scale an amount with ``precision`` decimals to :data:`MONEY_PRECISION`, exactly."""
    if precision > MONEY_PRECISION:
        raise ValueError(f"precision {precision} exceeds the portfolio's {MONEY_PRECISION}")
    return value * _SCALES[MONEY_PRECISION - precision]


class Position:
    """One instrument's net position with FIFO lots."""

    __slots__ = ("fees", "instrument", "lots", "quantity", "realised", "traded")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        # (signed size, price); all lots share the sign of the position.
        self.lots: deque[tuple[int, int]] = deque()
        self.quantity = 0
        self.realised = 0  # at price + size precision
        self.fees = 0  # at FEE_PRECISION
        self.traded = 0  # gross size traded

    @property
    def notional_precision(self) -> int:
        """Return the decimals of ``price * size`` products for this instrument."""
        return self.instrument.price_precision + self.instrument.size_precision

    def apply_fill(self, side: OrderSide, quantity: int, price: int, fee: int = 0) -> int:
        """Apply a fill; return the PnL it realised (price + size precision)."""
        if quantity <= 0:
            raise ValueError(f"fill quantity must be positive, got {quantity}")
        signed = quantity if side is OrderSide.BUY else -quantity
        self.fees += fee
        self.traded += quantity
        realised = 0
        lots = self.lots
        remaining = signed
        while remaining and lots and (lots[0][0] > 0) != (remaining > 0):
            lot_size, lot_price = lots[0]
            matched = min(abs(lot_size), abs(remaining))
            # A long lot closed by a sell realises (exit - entry); a short lot the reverse.
            direction = 1 if lot_size > 0 else -1
            realised += (price - lot_price) * matched * direction
            if matched == abs(lot_size):
                lots.popleft()
            else:
                lots[0] = (lot_size - matched * direction, lot_price)
            remaining += matched * direction
        if remaining:
            lots.append((remaining, price))
        self.quantity += signed
        self.realised += realised
        return realised

    def cost(self) -> int:
        """Return the signed entry notional of the open lots (price + size precision)."""
        return sum(size * price for size, price in self.lots)

    def unrealised(self, mark: int) -> int:
        """Return the open lots' PnL at ``mark`` (price + size precision)."""
        return sum((mark - price) * size for size, price in self.lots)

    def notional(self, mark: int) -> int:
        """Return the absolute value of the position at ``mark`` (price + size precision)."""
        return abs(self.quantity) * mark

    def __repr__(self) -> str:
        return (
            f"Position({self.instrument.key}, qty={self.quantity}, lots={len(self.lots)}, "
            f"realised={self.realised}, fees={self.fees})"
        )


@dataclass(frozen=True)
class PortfolioSnapshot:
    """Totals across positions at :data:`MONEY_PRECISION` decimals."""

    realised: int
    unrealised: int
    fees: int
    gross_exposure: int

    @property
    def net(self) -> int:
        """Return realised + unrealised - fees."""
        return self.realised + self.unrealised - self.fees


class Portfolio:
    """Positions keyed by ``(venue, symbol)``."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], Position] = {}

    def position(self, instrument: Instrument, venue: str | None = None) -> Position:
        """Return the position held on ``venue`` (default: the instrument's), flat at first use.

        A paper venue trading a market venue's instrument holds its positions
        under its own name.
        """
        key = (venue or instrument.venue, instrument.symbol)
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = Position(instrument)
        return position

    def quantity(self, venue: str, symbol: str) -> int:
        """Return the signed position size (0 when none)."""
        position = self.positions.get((venue, symbol))
        return 0 if position is None else position.quantity

    def snapshot(self, marks: Mapping[tuple[str, str], int]) -> PortfolioSnapshot:
        """Return totals, valuing open lots at ``marks`` (positions without a mark count 0)."""
        realised = unrealised = fees = exposure = 0
        for key, position in self.positions.items():
            precision = position.notional_precision
            realised += to_money(position.realised, precision)
            fees += to_money(position.fees, FEE_PRECISION)
            mark = marks.get(key)
            if mark is not None:
                unrealised += to_money(position.unrealised(mark), precision)
                exposure += to_money(position.notional(mark), precision)
        return PortfolioSnapshot(realised, unrealised, fees, exposure)

    def __iter__(self) -> Iterator[Position]:
        return iter(self.positions.values())
