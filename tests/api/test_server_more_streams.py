"""Order, fill, quote, trade and portfolio streams on a real trading stack over loopback gRPC."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_server_api import (
    BTC,
    READ_TOKEN,
    TRADE_TOKEN,
    Running,
    auth,
    best_bid,
    frames,
    limit_buy,
    run,
    running,
)

from kernel.adapters.base import RawFrame
from kernel.api.feeds import FeedStats
from kernel.bus import topics
from tradekernel_sdk.orders import OrderSide, OrderStatus, OrderType, OrderUpdate
from tradekernel_sdk.proto.tradekernel.v1 import (
    market_data_pb2,
    market_data_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    types_pb2,
)
from tradekernel_sdk.types import AggressorSide, Trade

__all__ = ["frames"]  # the fixture, shared with test_server_api

SPLIT = 3000
"""Frames fed before the server starts; the rest drive the paper venue during a test."""


async def opened(stats: FeedStats, count: int = 1) -> None:
    """Wait until ``count`` streams are subscribed."""
    for _ in range(300):
        if stats.streams >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{stats.streams} streams open, expected {count}")


async def feed_rest(api: Running, frames: list[RawFrame]) -> None:
    """Feed the remaining frames, letting the server run now and then."""
    for index, frame in enumerate(frames[SPLIT:]):
        api.stack.feed.on_frame(frame)
        if index % 100 == 0:
            await asyncio.sleep(0)


async def read_until(stream: Any, done: Any, limit: int = 50) -> list[Any]:
    """Read messages until ``done(message)``; fail after ``limit`` messages or 5 s of silence."""
    messages: list[Any] = []
    for _ in range(limit):
        message = await asyncio.wait_for(stream.read(), 5)
        assert message is not grpc.aio.EOF
        messages.append(message)
        if done(message):
            return messages
    raise AssertionError(f"not done after {limit} messages: {messages}")


def market_buy(client_order_id: str) -> orders_pb2.SubmitOrderRequest:
    request = limit_buy(client_order_id, 0)
    request.order.order_type = orders_pb2.ORDER_TYPE_MARKET
    request.order.ClearField("price")
    return request


def test_stream_order_events_pairs_updates_with_venue_events(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            every = orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(), metadata=auth(READ_TOKEN)
            )
            other_symbol = orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(
                    filter=orders_pb2.OrderFilter(symbol="ETHUSDT")
                ),
                metadata=auth(READ_TOKEN),
            )
            mine = orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(
                    filter=orders_pb2.OrderFilter(venue="binance", strategy="api")
                ),
                metadata=auth(READ_TOKEN),
            )
            await opened(api.server.orders.event_stats, 3)
            price = best_bid(api.stack) - 100_000_000_00  # 100 below the bid: rests
            await orders.SubmitOrder(limit_buy("ev-1", price), metadata=auth(TRADE_TOKEN))
            first = await asyncio.wait_for(every.read(), 5)
            assert first.order.client_order_id == "ev-1"
            assert first.order.status == orders_pb2.ORDER_STATUS_PENDING_NEW
            assert first.order.strategy == "api"
            assert first.order.price.units == price and first.order.price.precision == 8
            assert not first.HasField("event")  # the kernel's own change
            await feed_rest(api, frames)
            accepted = await read_until(
                every, lambda m: m.order.status == orders_pb2.ORDER_STATUS_NEW
            )
            assert accepted[-1].event.WhichOneof("event") == "accepted"
            assert accepted[-1].event.accepted.client_order_id == "ev-1"

            await orders.CancelOrder(
                orders_pb2.CancelOrderRequest(client_order_id="ev-1"), metadata=auth(TRADE_TOKEN)
            )
            pending = await asyncio.wait_for(every.read(), 5)
            assert pending.order.status == orders_pb2.ORDER_STATUS_PENDING_CANCEL
            assert not pending.HasField("event")

            seen = await read_until(mine, lambda m: m.order.status == orders_pb2.ORDER_STATUS_NEW)
            assert [m.order.client_order_id for m in seen] == ["ev-1", "ev-1"]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other_symbol.read(), 0.3)
            for stream in (every, other_symbol, mine):
                stream.cancel()
            for _ in range(100):
                if not api.server.orders.event_stats.streams:
                    break
                await asyncio.sleep(0.01)
            assert api.server.orders.event_stats.streams == 0  # unsubscribed

    run(main())


def test_stream_fills_and_denials(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            fills = orders.StreamFills(
                orders_pb2.StreamFillsRequest(filter=orders_pb2.OrderFilter(symbol="BTCUSDT")),
                metadata=auth(READ_TOKEN),
            )
            events = orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(), metadata=auth(READ_TOKEN)
            )
            await opened(api.server.orders.fill_stats)
            await opened(api.server.orders.event_stats)
            await orders.SubmitOrder(market_buy("fill-1"), metadata=auth(TRADE_TOKEN))
            await feed_rest(api, frames)
            fill = await asyncio.wait_for(fills.read(), 5)
            assert fill.fill.client_order_id == "fill-1"
            assert fill.side == orders_pb2.ORDER_SIDE_BUY
            assert fill.strategy == "api"
            assert fill.fill.quantity.precision == 8 and fill.fill.quantity.units > 0
            assert fill.fill.price.precision == 8 and fill.fill.price.units > 0
            assert fill.fill.fee.precision == 8
            assert fill.fill.liquidity == orders_pb2.LIQUIDITY_TAKER
            filled = await read_until(events, lambda m: m.event.WhichOneof("event") == "filled")
            assert filled[-1].event.filled.fill_id == fill.fill.fill_id
            assert filled[-1].order.filled_quantity.units >= fill.fill.quantity.units

            # A risk denial: the order comes DENIED, without the kernel's rejection notice.
            api.stack.risk.halt("test")
            await orders.SubmitOrder(
                limit_buy("denied-1", best_bid(api.stack)), metadata=auth(TRADE_TOKEN)
            )
            denied = await read_until(events, lambda m: m.order.client_order_id == "denied-1")
            assert denied[-1].order.status == orders_pb2.ORDER_STATUS_DENIED
            assert not denied[-1].HasField("event")
            fills.cancel()
            events.cancel()

    run(main())


def _update(index: int) -> OrderUpdate:
    return OrderUpdate(
        client_order_id=f"flood-{index}",
        strategy="flood",
        venue="paper",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=100_000,
        price=5_000_000_000_000,
        status=OrderStatus.PENDING_NEW,
        filled_quantity=0,
        filled_notional=0,
        fees=0,
        reason="",
        ts_event=index,
    )


def test_order_stream_of_a_client_that_never_reads_ends_resource_exhausted(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            api.server.orders.max_queued = 16
            stats = api.server.orders.event_stats
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            stream = orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(), metadata=auth(READ_TOKEN)
            )
            await opened(stats)
            started = time.perf_counter()
            for index in range(20_000):  # never read; the bus must not notice
                api.stack.bus.publish(topics.order_updates("flood"), _update(index))
            assert time.perf_counter() - started < 10
            assert stats.overflowed == 1  # noticed while the flood was being published
            assert 0 < stats.dropped < 20_000 - 16
            received = 0
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                while True:
                    message = await asyncio.wait_for(stream.read(), 5)
                    assert message is not grpc.aio.EOF
                    assert message.order.client_order_id == f"flood-{received}"  # no gap
                    received += 1
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "ListOrders" in (raised.value.details() or "")
            assert received == 16

    run(main())


def test_stream_quotes_and_trades(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            quotes = market.StreamQuotes(
                market_data_pb2.StreamQuotesRequest(instruments=[BTC]), metadata=auth(READ_TOKEN)
            )
            trades = market.StreamTrades(
                market_data_pb2.StreamTradesRequest(instruments=[BTC]), metadata=auth(READ_TOKEN)
            )
            await opened(api.server.market_data.quote_stats)
            await opened(api.server.market_data.trade_stats)
            await feed_rest(api, frames)
            quote = (await asyncio.wait_for(quotes.read(), 5)).quote
            assert (quote.venue, quote.symbol) == ("binance", "BTCUSDT")
            assert quote.bid_price.precision == 8 and quote.bid_size.precision == 8
            assert 0 < quote.bid_price.units < quote.ask_price.units
            trade = (await asyncio.wait_for(trades.read(), 5)).trade
            assert trade.symbol == "BTCUSDT" and trade.trade_id
            assert trade.price.units > 0 and trade.size.units > 0
            assert trade.aggressor in {
                market_data_pb2.AGGRESSOR_SIDE_BUY,
                market_data_pb2.AGGRESSOR_SIDE_SELL,
            }
            # Read only now and then: quotes conflate to the latest one.
            assert api.server.market_data.quote_stats.conflated > 0
            quotes.cancel()
            trades.cancel()

            missing = types_pb2.InstrumentId(venue="binance", symbol="NOPE")
            for request, code in [
                (market_data_pb2.StreamQuotesRequest(), grpc.StatusCode.INVALID_ARGUMENT),
                (
                    market_data_pb2.StreamQuotesRequest(instruments=[missing]),
                    grpc.StatusCode.NOT_FOUND,
                ),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await market.StreamQuotes(request, metadata=auth(READ_TOKEN)).read()
                assert raised.value.code() == code
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await market.StreamTrades(
                    market_data_pb2.StreamTradesRequest(), metadata=auth(READ_TOKEN)
                ).read()
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    run(main())


def test_trade_stream_of_a_client_that_never_reads_drops_the_oldest(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            api.server.market_data.max_queued = 8
            stats = api.server.market_data.trade_stats
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            stream = market.StreamTrades(
                market_data_pb2.StreamTradesRequest(instruments=[BTC]), metadata=auth(READ_TOKEN)
            )
            await opened(stats)
            topic = topics.trade("binance", "BTCUSDT")
            started = time.perf_counter()
            for index in range(10_000):
                trade = Trade(
                    "binance", "BTCUSDT", 6_000_000_000_000, 1000, AggressorSide.UNKNOWN,
                    str(index), index, index,
                )  # fmt: skip
                api.stack.bus.publish(topic, trade)
            assert time.perf_counter() - started < 10
            assert stats.dropped == 10_000 - 8
            received = [(await asyncio.wait_for(stream.read(), 5)).trade for _ in range(8)]
            assert [t.trade_id for t in received] == [str(i) for i in range(10_000 - 8, 10_000)]
            assert received[0].aggressor == market_data_pb2.AGGRESSOR_SIDE_UNSPECIFIED
            stream.cancel()

    run(main())


def test_trade_stream_with_max_batch_sends_waiting_trades_together_in_order(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            stats = api.server.market_data.trade_stats
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            stream = market.StreamTrades(
                market_data_pb2.StreamTradesRequest(instruments=[BTC], max_batch=100),
                metadata=auth(READ_TOKEN),
            )
            await opened(stats)
            topic = topics.trade("binance", "BTCUSDT")
            for index in range(250):  # all waiting when the stream next writes
                trade = Trade(
                    "binance", "BTCUSDT", 6_000_000_000_000, 1000, AggressorSide.BUY,
                    str(index), index, index,
                )  # fmt: skip
                api.stack.bus.publish(topic, trade)
            messages = [await asyncio.wait_for(stream.read(), 5) for _ in range(3)]
            assert [len(m.trades) for m in messages] == [100, 100, 50]
            assert not any(m.HasField("trade") for m in messages)
            received = [t.trade_id for m in messages for t in m.trades]
            assert received == [str(i) for i in range(250)]
            assert stats.sent == 250 and stats.dropped == 0
            stream.cancel()

            too_big = market_data_pb2.StreamTradesRequest(instruments=[BTC], max_batch=5000)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await market.StreamTrades(too_big, metadata=auth(READ_TOKEN)).read()
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (raised.value.details() or "").startswith("max_batch: at most 1024")

    run(main())


def test_stream_portfolio(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            portfolio = portfolio_pb2_grpc.PortfolioServiceStub(api.channel)
            stream = portfolio.StreamPortfolio(
                portfolio_pb2.StreamPortfolioRequest(interval_ms=1), metadata=auth(READ_TOKEN)
            )
            first = await asyncio.wait_for(stream.read(), 5)
            assert not first.positions
            assert len(first.pnl.net.value.partition(".")[2]) == 18
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            await orders.SubmitOrder(market_buy("pf-1"), metadata=auth(TRADE_TOKEN))
            await feed_rest(api, frames)
            later = await read_until(stream, lambda m: bool(m.positions), limit=20)
            started = time.perf_counter()
            for _ in range(2):
                await asyncio.wait_for(stream.read(), 5)
            # At most one message per 100 ms: an interval of 1 ms is raised to 100.
            assert time.perf_counter() - started >= 0.15
            position = later[-1].positions[0]
            assert (position.venue, position.symbol) == ("paper", "BTCUSDT")
            assert position.quantity.units > 0 and position.quantity.precision == 8
            assert position.HasField("mark_price")
            stream.cancel()

    run(main())


def test_streams_need_a_token(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:SPLIT]) as api:
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            portfolio = portfolio_pb2_grpc.PortfolioServiceStub(api.channel)
            calls = [
                lambda metadata: orders.StreamOrderEvents(
                    orders_pb2.StreamOrderEventsRequest(), metadata=metadata
                ),
                lambda metadata: orders.StreamFills(
                    orders_pb2.StreamFillsRequest(), metadata=metadata
                ),
                lambda metadata: market.StreamQuotes(
                    market_data_pb2.StreamQuotesRequest(instruments=[BTC]), metadata=metadata
                ),
                lambda metadata: market.StreamTrades(
                    market_data_pb2.StreamTradesRequest(instruments=[BTC]), metadata=metadata
                ),
                lambda metadata: portfolio.StreamPortfolio(
                    portfolio_pb2.StreamPortfolioRequest(), metadata=metadata
                ),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call(()).read()
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call(auth("not-a-token")).read()
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # Read tokens are enough: the portfolio answers at once, the others open.
            first = await asyncio.wait_for(calls[4](auth(READ_TOKEN)).read(), 5)
            assert isinstance(first, portfolio_pb2.StreamPortfolioResponse)
            opened_streams = [call(auth(READ_TOKEN)) for call in calls[:4]]
            await opened(api.server.orders.event_stats)
            await opened(api.server.orders.fill_stats)
            await opened(api.server.market_data.quote_stats)
            await opened(api.server.market_data.trade_stats)
            for stream in opened_streams:
                stream.cancel()

    run(main())
