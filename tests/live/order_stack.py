"""The kernel's trading path on one live venue, as the order-entry tests build it.

Feed and market data, risk, the journal on disk (recovered at start), the
order manager and the venue's order entry, on one bus: what ``tradekernel
run`` assembles with ``trade = true``, without the service around it. A
venue's test subclasses it with its own feed, market data and order entry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernel.bus import Bus
from kernel.journal import Journal
from kernel.orders import Order, OrderManager
from kernel.orders.manager import OrderVenue
from kernel.risk import RiskConfig, RiskEngine
from kernel.trading import MarketData, TradingContext, VenueMap
from kernel.trading.clock import MarketClock
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType, TimeInForce
from tradekernel_sdk.types import BookState, Instrument

__all__ = ["TradingStack", "until"]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class TradingStack:
    """Risk, journal and orders on ``venue_name``'s live book of ``symbol``.

    A subclass builds ``self.feed`` and ``self.market_data`` on ``self.bus``,
    calls :meth:`trade_on`, then builds its order entry and calls :meth:`route_to`.
    ``usdt`` is one quote unit at the symbol's price precision.
    """

    def __init__(
        self, venue_name: str, symbol: str, journal_path: Path, *, usdt: int, quantity: int
    ) -> None:
        self.venue_name = venue_name
        self.symbol = symbol
        self.usdt = usdt
        self.quantity = quantity
        self.journal_path = journal_path
        self.bus = Bus()
        self.clock = MarketClock(self.bus)
        self.feed: Any = None
        self.market_data: Any = None
        self.venue: Any = None
        self._market_task: asyncio.Task[None] | None = None
        self._ids = 0

    def trade_on(self, feed: Any, market_data: Any) -> None:
        """Build risk, the journal and the order manager on ``feed``'s books; replay the journal."""
        self.feed = feed
        self.market_data = market_data
        name = self.venue_name
        market = MarketData(
            books={name: feed.book},
            states={name: feed.book_state},
            instruments={name: feed.instrument},
        )
        self.context = TradingContext(market=market, venues=VenueMap({name: name}))
        self.risk = RiskEngine(RiskConfig(), self.context, clock=self.clock, bus=self.bus)
        self.journal = Journal.open(self.journal_path, fsync="batch")
        self.orders = OrderManager(
            self.bus,
            journal=self.journal,
            risk=self.risk,
            instruments=self.context.instrument,
            clock=self.clock,
            venues=(name,),
        )
        self.context.attach(self.orders)
        self.recovered = self.orders.recover(
            (record.kind, record.payload)
            for record in self.journal.records_since(0)
            if record.kind in OrderManager.RECORD_KINDS
        )

    def route_to(self, venue: Any) -> None:
        """Take ``venue`` as the order entry the order manager routes to."""
        routed: OrderVenue = venue  # the order manager's venue protocol, checked by mypy
        assert routed.venue_name == self.venue_name
        self.venue = venue

    async def start(self, *, reconciled: bool = True) -> None:
        self._market_task = asyncio.create_task(self.market_data.run())
        await until(lambda: self.feed.book_state(self.symbol) is BookState.VALID)
        await self.venue.start()
        if reconciled:
            await until(lambda: len(self.venue.reconciliations) >= 1)

    async def stop(self) -> None:
        await self.venue.stop()
        self.market_data.stop()
        if self._market_task is not None:
            await asyncio.wait_for(self._market_task, 5)
        self.orders.close()
        self.journal.close()

    def instrument(self) -> Instrument:
        instrument = self.feed.instrument(self.symbol)
        assert instrument is not None
        return instrument

    def best(self, side: OrderSide) -> int:
        book = self.feed.book(self.symbol)
        assert book is not None
        price = book.best_ask_price() if side is OrderSide.BUY else book.best_bid_price()
        assert price is not None
        return price  # type: ignore[no-any-return]

    def submit(
        self,
        side: OrderSide,
        price: int | None,
        quantity: int | None = None,
        *,
        order_type: OrderType = OrderType.LIMIT,
        client_order_id: str | None = None,
    ) -> Order:
        self._ids += 1
        request = OrderRequest(
            # A dash: where a venue refuses the id, it gets a digest of it instead.
            client_order_id or f"t{time.monotonic_ns()}-{self._ids}",
            self.venue_name,
            self.symbol,
            side,
            order_type,
            self.quantity if quantity is None else quantity,
            price,
            TimeInForce.GTC,
            self.clock(),
        )
        return self.orders.submit(request, strategy="test")

    def marketable_buy(self) -> Order:
        # A limit 50 USDT through the ask fills at the book's prices even if it moved a little.
        return self.submit(OrderSide.BUY, self.best(OrderSide.BUY) + 50 * self.usdt)

    def resting_buy(self, client_order_id: str | None = None) -> Order:
        price = self.best(OrderSide.SELL) - 1000 * self.usdt
        return self.submit(OrderSide.BUY, price, client_order_id=client_order_id)

    def journal_kinds(self) -> list[str]:
        self.journal.flush()
        return [record.kind for record in self.journal.records_since(0)]
