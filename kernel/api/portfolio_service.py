"""``PortfolioService``: positions with their P&L, once or at a fixed interval.

``StreamPortfolio`` computes each message when it is due, on the stream's own
task: a slow client only delays its own next message, never the kernel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from kernel.api.convert import amount, position_message
from kernel.api.errors import ApiError, unary
from kernel.api.parts import ApiParts
from kernel.orders import OrderManager
from kernel.portfolio import MONEY_PRECISION, Position
from tradekernel_sdk.proto.tradekernel.v1 import portfolio_pb2, portfolio_pb2_grpc

__all__ = ["MIN_INTERVAL_MS", "PortfolioServicer"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

DEFAULT_INTERVAL_MS = 1000
"""``StreamPortfolio``'s interval when the request leaves it at 0."""
MIN_INTERVAL_MS = 100
"""The shortest ``StreamPortfolio`` interval; smaller requests are raised to it."""


class PortfolioServicer(portfolio_pb2_grpc.PortfolioServiceServicer):
    """Report positions."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    def _mark(self, position: Position) -> int | None:
        """Return the mid of the position's book, or None."""
        instrument = position.instrument
        book = self.parts.market.book(instrument.venue, instrument.symbol)
        mid_x2 = None if book is None else book.mid_price_x2()
        return None if mid_x2 is None else mid_x2 // 2

    def _positions(
        self, manager: OrderManager, venue: str, symbol: str, include_flat: bool
    ) -> list[portfolio_pb2.Position]:
        """Return matching positions by venue, then symbol, each marked at its book's mid."""
        positions: list[portfolio_pb2.Position] = []
        for (held_at, held), position in sorted(manager.portfolio.positions.items()):
            if venue and venue not in (held_at, self.parts.venues.market_venue(held_at)):
                continue
            if symbol and held != symbol:
                continue
            if not position.quantity and not include_flat:
                continue
            mark = self._mark(position) if position.quantity else None
            positions.append(position_message(held_at, position, mark))
        return positions

    def _pnl(self, manager: OrderManager) -> portfolio_pb2.Pnl:
        """Return portfolio totals at 18 decimals, positions marked at their books' mids."""
        marks: dict[tuple[str, str], int] = {}
        for key, position in manager.portfolio.positions.items():
            mark = self._mark(position)
            if mark is not None:
                marks[key] = mark
        totals = manager.portfolio.snapshot(marks)
        return portfolio_pb2.Pnl(
            realised=amount(totals.realised, MONEY_PRECISION),
            unrealised=amount(totals.unrealised, MONEY_PRECISION),
            fees=amount(totals.fees, MONEY_PRECISION),
            gross_exposure=amount(totals.gross_exposure, MONEY_PRECISION),
            net=amount(totals.net, MONEY_PRECISION),
            ts=time.time_ns(),
        )

    @unary
    async def GetPositions(
        self, request: portfolio_pb2.GetPositionsRequest, context: Context
    ) -> portfolio_pb2.GetPositionsResponse:
        """Return positions by venue, then symbol, each marked at its book's mid."""
        manager = self.parts.order_manager()
        return portfolio_pb2.GetPositionsResponse(
            positions=self._positions(manager, request.venue, request.symbol, request.include_flat),
            ts=time.time_ns(),
        )

    @unary
    async def GetPnl(
        self, request: portfolio_pb2.GetPnlRequest, context: Context
    ) -> portfolio_pb2.GetPnlResponse:
        """Return portfolio totals at 18 decimals, positions marked at their books' mids."""
        return portfolio_pb2.GetPnlResponse(pnl=self._pnl(self.parts.order_manager()))

    async def StreamPortfolio(
        self, request: portfolio_pb2.StreamPortfolioRequest, context: Context
    ) -> AsyncIterator[portfolio_pb2.StreamPortfolioResponse]:
        """Stream every position and the totals now, then every ``interval_ms``."""
        interval_ms = max(request.interval_ms or DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS)
        while True:
            try:
                manager = self.parts.order_manager()
            except ApiError as error:
                await context.abort(error.code, error.message)
            yield portfolio_pb2.StreamPortfolioResponse(
                positions=self._positions(manager, "", "", request.include_flat),
                pnl=self._pnl(manager),
            )
            await asyncio.sleep(interval_ms / 1000)
