"""The live account and market state the risk engine checks orders against.

Orders go to a *trading* venue (``paper``) that trades against a *market*
venue's books (``binance``): :class:`VenueMap` says which is which, so a
strategy can speak of ``binance`` while its orders are routed to the paper
venue that simulates it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import msgspec

from kernel.book import L2Book
from kernel.orders import Order, OrderManager
from kernel.portfolio import MONEY_PRECISION, Position, to_money
from kernel.risk.config import NOTIONAL_PRECISION
from tradekernel_sdk.orders import OrderSide
from tradekernel_sdk.types import BookState, Instrument

__all__ = ["MarketData", "OpenOrderSnapshot", "TradingContext", "VenueMap"]

_TO_NOTIONAL: int = 10 ** (MONEY_PRECISION - NOTIONAL_PRECISION)


class VenueMap:
    """Where orders for a market venue go: ``{"binance": "paper"}`` in paper trading."""

    def __init__(self, routes: Mapping[str, str]) -> None:
        self.routes = dict(routes)
        self._markets = {trading: market for market, trading in self.routes.items()}
        if len(self._markets) != len(self.routes):
            raise ValueError(f"two market venues route to the same trading venue: {routes}")

    def trading_venue(self, venue: str) -> str:
        """Return the venue orders for ``venue`` are sent to."""
        return self.routes.get(venue, venue)

    def market_venue(self, venue: str) -> str:
        """Return the venue whose market data prices orders sent to ``venue``."""
        return self._markets.get(venue, venue)


class MarketData:
    """Books, their states and instruments of every market venue, by lookup functions."""

    def __init__(
        self,
        *,
        books: Mapping[str, Callable[[str], L2Book | None]],
        states: Mapping[str, Callable[[str], BookState]],
        instruments: Mapping[str, Callable[[str], Instrument | None]],
    ) -> None:
        self._books = books
        self._states = states
        self._instruments = instruments

    def book(self, venue: str, symbol: str) -> L2Book | None:
        """Return the live book, or None."""
        lookup = self._books.get(venue)
        return None if lookup is None else lookup(symbol)

    def book_state(self, venue: str, symbol: str) -> BookState:
        """Return the book's state (SYNCING for an unknown venue)."""
        lookup = self._states.get(venue)
        return BookState.SYNCING if lookup is None else lookup(symbol)

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Return the instrument, or None."""
        lookup = self._instruments.get(venue)
        return None if lookup is None else lookup(symbol)

    def lookups(self, venue: str) -> _Lookups | None:
        """Return the book, state and instrument lookups of ``venue``, or None when it has none."""
        book = self._books.get(venue)
        state = self._states.get(venue)
        instrument = self._instruments.get(venue)
        if book is None or state is None or instrument is None:
            return None
        return book, state, instrument


_Lookups = tuple[
    Callable[[str], L2Book | None], Callable[[str], BookState], Callable[[str], Instrument | None]
]


class OpenOrderSnapshot(msgspec.Struct, frozen=True):
    """A working order as the risk engine sees it (market orders priced at 0).

    A struct rather than a frozen dataclass: the risk engine builds these on
    every order check, and a struct is built about ten times faster.
    """

    client_order_id: str
    symbol: str
    side: OrderSide
    price: int
    leaves_quantity: int

    @classmethod
    def of(cls, order: Order) -> OpenOrderSnapshot:
        """Return the risk view of ``order``."""
        return cls(
            order.client_order_id,
            order.symbol,
            order.side,
            order.price or 0,
            order.leaves_quantity,
        )


class TradingContext:
    """A :class:`~kernel.risk.context.RiskContext` over the order manager and market data.

    Venue arguments are trading venues (where orders go); books and instruments
    come from the market venue :class:`VenueMap` pairs them with. Money is in
    ``10**-8`` quote units: exposure rounds up, P&L and equity round down, so
    limits err on the safe side.
    """

    def __init__(
        self,
        *,
        market: MarketData,
        venues: VenueMap,
        orders: OrderManager | None = None,
        starting_equity: int = 0,
    ) -> None:
        self._orders = orders
        self.market = market
        self.venues = venues
        self.starting_equity = starting_equity
        self._equity_peak = starting_equity
        # Trading venue -> its market venue's lookups, resolved once: the risk
        # engine asks for books and instruments on every order.
        self._lookups: dict[str, _Lookups] = {}
        # Position key -> (the position, its book lookup, symbol, scale to money):
        # what valuing it needs besides the mid, found once per position.
        self._valuations: dict[
            tuple[str, str], tuple[Position, Callable[[str], L2Book | None], str, int]
        ] = {}

    @property
    def orders(self) -> OrderManager:
        """Return the order manager whose orders and positions this context reads."""
        if self._orders is None:
            raise RuntimeError("no order manager attached to the trading context")
        return self._orders

    def attach(self, orders: OrderManager) -> None:
        """Read orders and positions from ``orders`` (built after the risk engine it uses)."""
        self._orders = orders

    def _venue_lookups(self, venue: str) -> _Lookups | None:
        lookups = self._lookups.get(venue)
        if lookups is None:
            lookups = self.market.lookups(self.venues.market_venue(venue))
            if lookups is not None:
                self._lookups[venue] = lookups
        return lookups

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Return the instrument traded on ``venue``, described by its market venue."""
        lookups = self._lookups.get(venue) or self._venue_lookups(venue)
        if lookups is None:
            return self.market.instrument(self.venues.market_venue(venue), symbol)
        return lookups[2](symbol)

    def book(self, venue: str, symbol: str) -> L2Book | None:
        """Return the market book orders on ``venue`` trade against."""
        lookups = self._lookups.get(venue) or self._venue_lookups(venue)
        if lookups is None:
            return self.market.book(self.venues.market_venue(venue), symbol)
        return lookups[0](symbol)

    def book_state(self, venue: str, symbol: str) -> BookState:
        """Return the state of that book."""
        lookups = self._lookups.get(venue) or self._venue_lookups(venue)
        if lookups is None:
            return self.market.book_state(self.venues.market_venue(venue), symbol)
        return lookups[1](symbol)

    def position(self, venue: str, symbol: str) -> int:
        """Return the signed position held on ``venue``."""
        return self.orders.portfolio.quantity(venue, symbol)

    def open_orders(self, venue: str, symbol: str | None) -> Sequence[OpenOrderSnapshot]:
        """Return working orders on one instrument, or on the whole venue."""
        return [
            OpenOrderSnapshot(
                order.client_order_id,
                order.symbol,
                order.side,
                order.price or 0,
                order.leaves_quantity,
            )
            for order in self.orders.open_orders(venue, symbol)
        ]

    def _mark(self, position: Position) -> int | None:
        instrument = position.instrument
        book = self.book(instrument.venue, instrument.symbol)
        if book is None:
            return None
        mid_x2 = book.mid_price_x2()
        return None if mid_x2 is None else mid_x2 // 2

    def _valuation(
        self, key: tuple[str, str], position: Position
    ) -> tuple[Position, Callable[[str], L2Book | None], str, int] | None:
        """Return how to value ``position`` (None when its venue has no lookups yet)."""
        cached = self._valuations.get(key)
        if cached is not None and cached[0] is position:
            return cached
        instrument = position.instrument
        lookups = self._venue_lookups(instrument.venue)
        if lookups is None:
            return None
        valuation = (
            position,
            lookups[0],
            instrument.symbol,
            to_money(1, position.notional_precision),  # refuses a precision it cannot scale
        )
        self._valuations[key] = valuation
        return valuation

    def gross_exposure(self) -> int:
        """Return |positions| at mid plus working orders at max(price, mid), rounded up."""
        total = 0
        orders = self.orders
        for key, position in orders.portfolio.positions.items():
            quantity = position.quantity
            if not quantity:  # a flat position adds nothing at any mark
                continue
            valuation = self._valuation(key, position)
            if valuation is None:
                mark = self._mark(position)
                if mark is not None:
                    total += to_money(position.notional(mark), position.notional_precision)
                continue
            _, book_of, symbol, scale = valuation
            book = book_of(symbol)
            mid_x2 = None if book is None else book.mid_price_x2()
            if mid_x2 is not None:
                total += abs(quantity) * (mid_x2 // 2) * scale
        for order in orders.open_orders():
            instrument = self.instrument(order.venue, order.symbol)
            if instrument is None:
                continue
            book = self.book(order.venue, order.symbol)
            mid_x2 = None if book is None else book.mid_price_x2()
            price = max(order.price or 0, 0 if mid_x2 is None else mid_x2 // 2)
            precision = instrument.price_precision + instrument.size_precision
            total += to_money(price * order.leaves_quantity, precision)
        return -(-total // _TO_NOTIONAL)

    def realised_pnl_today(self) -> int:
        """Return realised P&L less fees since start, rounded down."""
        total = 0
        for position in self.orders.portfolio.positions.values():
            total += to_money(position.realised, position.notional_precision)
            total -= to_money(position.fees, NOTIONAL_PRECISION)
        return total // _TO_NOTIONAL

    def marks(self) -> dict[tuple[str, str], int]:
        """Return the mid price (rounded down) of every instrument with a position."""
        marks = {}
        for key, position in self.orders.portfolio.positions.items():
            mark = self._mark(position)
            if mark is not None:
                marks[key] = mark
        return marks

    def equity(self) -> int:
        """Return starting equity plus realised and unrealised P&L less fees, rounded down."""
        snapshot = self.orders.portfolio.snapshot(self.marks())
        value = self.starting_equity + snapshot.net // _TO_NOTIONAL
        self._equity_peak = max(self._equity_peak, value)
        return value

    def equity_peak(self) -> int:
        """Return the highest equity seen so far."""
        return self._equity_peak
