"""``PortfolioService``: positions with their P&L."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from kernel.api.convert import amount, position_message
from kernel.api.errors import unary
from kernel.api.parts import ApiParts
from kernel.portfolio import MONEY_PRECISION
from tradekernel_sdk.proto.tradekernel.v1 import portfolio_pb2, portfolio_pb2_grpc

__all__ = ["PortfolioServicer"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class PortfolioServicer(portfolio_pb2_grpc.PortfolioServiceServicer):
    """Report positions."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    @unary
    async def GetPositions(
        self, request: portfolio_pb2.GetPositionsRequest, context: Context
    ) -> portfolio_pb2.GetPositionsResponse:
        """Return positions by venue, then symbol, each marked at its book's mid."""
        manager = self.parts.order_manager()
        response = portfolio_pb2.GetPositionsResponse(ts=time.time_ns())
        for (venue, symbol), position in sorted(manager.portfolio.positions.items()):
            if request.venue and request.venue not in (
                venue,
                self.parts.venues.market_venue(venue),
            ):
                continue
            if request.symbol and symbol != request.symbol:
                continue
            if not position.quantity and not request.include_flat:
                continue
            instrument = position.instrument
            book = self.parts.market.book(instrument.venue, instrument.symbol)
            mid_x2 = None if book is None else book.mid_price_x2()
            mark = None if mid_x2 is None or not position.quantity else mid_x2 // 2
            response.positions.append(position_message(venue, position, mark))
        return response

    async def StreamPortfolio(self, request: Any, context: Context) -> AsyncIterator[Any]:
        """Answer UNIMPLEMENTED: not served yet."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "StreamPortfolio is not implemented yet")
        yield None  # pragma: no cover (abort raises)

    @unary
    async def GetPnl(
        self, request: portfolio_pb2.GetPnlRequest, context: Context
    ) -> portfolio_pb2.GetPnlResponse:
        """Return portfolio totals at 18 decimals, positions marked at their books' mids."""
        manager = self.parts.order_manager()
        marks: dict[tuple[str, str], int] = {}
        for key, position in manager.portfolio.positions.items():
            instrument = position.instrument
            book = self.parts.market.book(instrument.venue, instrument.symbol)
            mid_x2 = None if book is None else book.mid_price_x2()
            if mid_x2 is not None:
                marks[key] = mid_x2 // 2
        totals = manager.portfolio.snapshot(marks)
        return portfolio_pb2.GetPnlResponse(
            pnl=portfolio_pb2.Pnl(
                realised=amount(totals.realised, MONEY_PRECISION),
                unrealised=amount(totals.unrealised, MONEY_PRECISION),
                fees=amount(totals.fees, MONEY_PRECISION),
                gross_exposure=amount(totals.gross_exposure, MONEY_PRECISION),
                net=amount(totals.net, MONEY_PRECISION),
                ts=time.time_ns(),
            )
        )
