"""What the risk engine reads: the :class:`RiskContext` protocol and an in-memory one.

The order manager implements :class:`RiskContext` over its live state; tests
and benchmarks use :class:`StaticRiskContext`, whose values are set directly.

Units. Prices and sizes are fixed-point integers at the instrument's
precision. Positions are signed sizes (long positive). Amounts of money
(:meth:`~RiskContext.gross_exposure`, P&L, equity) are integers of
``10**-8`` quote currency (:data:`~kernel.risk.config.NOTIONAL_PRECISION`,
the precision of fees), all in one quote currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

from kernel.book import L2Book
from tradekernel_sdk.orders import OrderSide
from tradekernel_sdk.types import BookState, Instrument

__all__ = ["OpenOrder", "OpenOrderView", "RiskContext", "StaticRiskContext"]


class OpenOrderView(Protocol):
    """A working order as the risk engine sees it."""

    @property
    def client_order_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> OrderSide: ...
    @property
    def price(self) -> int:
        """The order's limit price (fixed point)."""
        ...

    @property
    def leaves_quantity(self) -> int:
        """What is still working (fixed-point size)."""
        ...


class RiskContext(Protocol):
    """The account and market state the risk engine checks orders against."""

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Return the instrument, or None when it is not known."""
        ...

    def book(self, venue: str, symbol: str) -> L2Book | None:
        """Return the instrument's live book, or None when there is none."""
        ...

    def book_state(self, venue: str, symbol: str) -> BookState:
        """Return whether the instrument's book can be trusted."""
        ...

    def position(self, venue: str, symbol: str) -> int:
        """Return the signed position (fixed-point size; long positive, 0 when flat)."""
        ...

    def open_orders(self, venue: str, symbol: str | None) -> Sequence[OpenOrderView]:
        """Return the working orders on one instrument, or on the whole venue with None."""
        ...

    def gross_exposure(self) -> int:
        """Return the gross exposure in ``10**-8`` quote currency.

        The sum over instruments of the absolute position at mark price (mid)
        plus the notional of every working order, valued at the larger of its
        price and the mark: what the exposure could become if every working
        order filled. Leaving working orders out makes the check one on
        filled exposure only.
        """
        ...

    def realised_pnl_today(self) -> int:
        """Return today's realised P&L in ``10**-8`` quote currency (a loss is negative)."""
        ...

    def equity(self) -> int:
        """Return the account's current equity in ``10**-8`` quote currency."""
        ...

    def equity_peak(self) -> int:
        """Return the highest equity seen (the drawdown reference), same unit."""
        ...


class OpenOrder(msgspec.Struct, frozen=True, array_like=True):
    """A working order kept by :class:`StaticRiskContext`."""

    client_order_id: str
    symbol: str
    side: OrderSide
    price: int
    leaves_quantity: int


_NO_ORDERS: tuple[OpenOrder, ...] = ()


class StaticRiskContext:
    """A :class:`RiskContext` held in memory and changed by hand, for tests and benchmarks.

    Books added without a state are VALID. Account values (exposure, P&L,
    equity) are plain attributes.
    """

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        gross_exposure: int = 0,
        realised_pnl_today: int = 0,
        equity: int = 0,
        equity_peak: int = 0,
    ) -> None:
        self.instruments: dict[str, dict[str, Instrument]] = {}
        self.books: dict[str, dict[str, L2Book]] = {}
        self.book_states: dict[str, dict[str, BookState]] = {}
        self.positions: dict[str, dict[str, int]] = {}
        self._orders: dict[str, dict[str, list[OpenOrder]]] = {}
        self._venue_orders: dict[str, list[OpenOrder]] = {}
        self.gross_exposure_value = gross_exposure
        self.realised_pnl_today_value = realised_pnl_today
        self.equity_value = equity
        self.equity_peak_value = equity_peak
        for instrument in instruments:
            self.add_instrument(instrument)

    # -- changing it ---------------------------------------------------------

    def add_instrument(
        self, instrument: Instrument, book: L2Book | None = None, state: BookState | None = None
    ) -> None:
        """Make ``instrument`` known, with its book and book state when given."""
        self.instruments.setdefault(instrument.venue, {})[instrument.symbol] = instrument
        if book is not None:
            self.set_book(instrument.venue, instrument.symbol, book, state or BookState.VALID)
        elif state is not None:
            self.book_states.setdefault(instrument.venue, {})[instrument.symbol] = state

    def set_book(
        self, venue: str, symbol: str, book: L2Book, state: BookState = BookState.VALID
    ) -> None:
        """Set the instrument's book and its state."""
        self.books.setdefault(venue, {})[symbol] = book
        self.book_states.setdefault(venue, {})[symbol] = state

    def set_book_state(self, venue: str, symbol: str, state: BookState) -> None:
        """Set the state of the instrument's book."""
        self.book_states.setdefault(venue, {})[symbol] = state

    def set_position(self, venue: str, symbol: str, position: int) -> None:
        """Set the instrument's signed position."""
        self.positions.setdefault(venue, {})[symbol] = position

    def add_open_order(self, venue: str, order: OpenOrder) -> None:
        """Add a working order on ``venue``."""
        self._orders.setdefault(venue, {}).setdefault(order.symbol, []).append(order)
        self._venue_orders.setdefault(venue, []).append(order)

    def remove_open_order(self, venue: str, client_order_id: str) -> OpenOrder | None:
        """Remove a working order by id; return it, or None when there was none."""
        orders = self._venue_orders.get(venue, [])
        for index, order in enumerate(orders):
            if order.client_order_id == client_order_id:
                del orders[index]
                self._orders[venue][order.symbol].remove(order)
                return order
        return None

    # -- RiskContext ---------------------------------------------------------

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Return the instrument, or None when it is not known."""
        by_symbol = self.instruments.get(venue)
        return None if by_symbol is None else by_symbol.get(symbol)

    def book(self, venue: str, symbol: str) -> L2Book | None:
        """Return the instrument's book, or None."""
        by_symbol = self.books.get(venue)
        return None if by_symbol is None else by_symbol.get(symbol)

    def book_state(self, venue: str, symbol: str) -> BookState:
        """Return the state of the instrument's book (SYNCING when never set)."""
        by_symbol = self.book_states.get(venue)
        if by_symbol is None:
            return BookState.SYNCING
        return by_symbol.get(symbol, BookState.SYNCING)

    def position(self, venue: str, symbol: str) -> int:
        """Return the signed position, 0 when never set."""
        by_symbol = self.positions.get(venue)
        return 0 if by_symbol is None else by_symbol.get(symbol, 0)

    def open_orders(self, venue: str, symbol: str | None) -> Sequence[OpenOrder]:
        """Return the working orders of an instrument, or of the venue with None (not copies)."""
        if symbol is None:
            return self._venue_orders.get(venue, _NO_ORDERS)
        by_symbol = self._orders.get(venue)
        if by_symbol is None:
            return _NO_ORDERS
        return by_symbol.get(symbol, _NO_ORDERS)

    def gross_exposure(self) -> int:
        """Return :attr:`gross_exposure_value`."""
        return self.gross_exposure_value

    def realised_pnl_today(self) -> int:
        """Return :attr:`realised_pnl_today_value`."""
        return self.realised_pnl_today_value

    def equity(self) -> int:
        """Return :attr:`equity_value`."""
        return self.equity_value

    def equity_peak(self) -> int:
        """Return :attr:`equity_peak_value`."""
        return self.equity_peak_value
