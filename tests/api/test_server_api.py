"""The API server on a real trading stack: every implemented rpc over loopback gRPC."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.api import ApiParts, ApiServer
from kernel.api.tls import TlsConfig
from kernel.plugins import PluginHost
from kernel.recording import open_frames
from kernel.trading.changes import RuntimeChanges
from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    types_pb2,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trading"))
from trading_stack import TradingStack

READ_TOKEN = "read-token-5f1c9a"
TRADE_TOKEN = "trade-token-8d2e47"
ADMIN_TOKEN = "admin-token-c03b11"
TOKENS = {
    READ_TOKEN: frozenset({"read"}),
    TRADE_TOKEN: frozenset({"read", "trade"}),
    ADMIN_TOKEN: frozenset({"read", "trade", "admin"}),
}
BTC = types_pb2.InstrumentId(venue="binance", symbol="BTCUSDT")
DATA = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"


@pytest.fixture(scope="module")
def frames() -> list[RawFrame]:
    """Return the start of the bundled real BTCUSDT spot slice."""
    return list(open_frames(DATA / "btcusdt_20240808_head12000.gz"))[:4000]


def auth(token: str) -> tuple[tuple[str, str], ...]:
    """Return call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Running:
    """A started server on a trading stack and a channel to it."""

    stack: TradingStack
    server: ApiServer
    channel: grpc.aio.Channel
    port: int

    def stub(self, factory: Callable[[grpc.aio.Channel], Any]) -> Any:
        """Return a stub of the generated ``factory`` on the channel."""
        return factory(self.channel)


@asynccontextmanager
async def running(
    tmp_path: Path,
    frames: list[RawFrame],
    *,
    tls: TlsConfig | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    plugins: PluginHost | None = None,
    strategy_plugins: Mapping[str, str] | None = None,
    prepare: Callable[[TradingStack], None] | None = None,
    model_dir: Path | None = None,
    **server_options: Any,
) -> AsyncIterator[Running]:
    """Start a trading stack fed with ``frames`` and an API server on port 0.

    With ``tls`` the server serves TLS and the channel uses ``credentials``.
    ``prepare`` runs on the stack before the frames (to add strategies, which
    then start); ``strategy_plugins`` says which plug-in of ``plugins`` each
    strategy came from.
    """
    stack = TradingStack(tmp_path / "journal.tkj")
    changes = RuntimeChanges(
        journal=stack.journal,
        risk=stack.risk,
        runner=stack.runner,
        strategy_plugins=strategy_plugins or {},
    )
    if prepare is not None:
        prepare(stack)
        stack.runner.start()
    for frame in frames:
        stack.feed.on_frame(frame)
    parts = ApiParts(
        bus=stack.bus,
        market=stack.market,
        venues=stack.venues,
        instruments=lambda: list(KNOWN_INSTRUMENTS["binance"].values()),
        orders=lambda: stack.orders,
        risk=lambda: stack.risk,
        components=lambda: ["trading"],
        plugins=lambda: plugins,
        changes=lambda: changes,
        model_dir=model_dir,
    )
    server = ApiServer(parts, tokens=TOKENS, grace_s=0.5, tls=tls, **server_options)
    port = await server.start()
    if credentials is None:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    else:
        channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)
    try:
        yield Running(stack, server, channel, port)
    finally:
        await channel.close()
        await server.stop()
        if prepare is not None:
            stack.runner.stop()
        stack.close()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run one test's coroutine on a fresh event loop."""
    asyncio.run(coroutine)


async def code_of(call: Any) -> grpc.StatusCode:
    """Return the status code a call fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()


def best_bid(stack: TradingStack) -> int:
    book = stack.feed.book("BTCUSDT")
    assert book is not None
    price = book.best_bid_price()
    assert price is not None
    return price


def limit_buy(client_order_id: str, price: int, lots: int = 100) -> orders_pb2.SubmitOrderRequest:
    """Return a resting limit buy of ``lots`` lots of 0.00001 BTC at ``price`` (8 decimals)."""
    return orders_pb2.SubmitOrderRequest(
        order=orders_pb2.OrderRequest(
            client_order_id=client_order_id,
            venue="binance",
            symbol="BTCUSDT",
            side=orders_pb2.ORDER_SIDE_BUY,
            order_type=orders_pb2.ORDER_TYPE_LIMIT,
            quantity=types_pb2.Decimal(units=lots * 1000, precision=8),
            price=types_pb2.Decimal(units=price, precision=8),
        )
    )


def test_kernel_service(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            kernel = api.stub(kernel_pb2_grpc.KernelServiceStub)
            version = await kernel.GetVersion(
                kernel_pb2.GetVersionRequest(), metadata=auth(READ_TOKEN)
            )
            assert version.api_version == "v1"
            assert version.kernel_version and version.sdk_version and version.plugin_api_version
            status = await kernel.GetStatus(
                kernel_pb2.GetStatusRequest(), metadata=auth(READ_TOKEN)
            )
            assert status.uptime_ns > 0
            assert [c.name for c in status.components] == ["trading"]
            assert status.trading_state == risk_pb2.TRADING_STATE_ACTIVE
            books = {book.instrument.symbol: book for book in status.books}
            assert books["BTCUSDT"].state == market_data_pb2.BOOK_STATE_VALID
            assert books["BTCUSDT"].bid_levels > 0
            summary = await kernel.GetConfigSummary(
                kernel_pb2.GetConfigSummaryRequest(), metadata=auth(READ_TOKEN)
            )
            assert summary.source == "embedded default"

    run(main())


def test_order_service_submit_list_cancel(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            price = best_bid(api.stack) - 100 * 1_000_000  # 100 USDT under the bid: rests
            submitted = await orders.SubmitOrder(
                limit_buy("api-1", price), metadata=auth(TRADE_TOKEN)
            )
            assert submitted.order.status == orders_pb2.ORDER_STATUS_PENDING_NEW, submitted
            assert submitted.order.strategy == "api"
            assert submitted.order.price.units == price and submitted.order.price.precision == 8
            assert submitted.order.quantity.units == 100_000
            assert submitted.order.filled_notional.value == "0.0000000000000000"
            assert not submitted.replayed
            again = await orders.SubmitOrder(limit_buy("api-1", price), metadata=auth(TRADE_TOKEN))
            assert again.replayed and again.order.client_order_id == "api-1"
            assert len(api.stack.orders.orders) == 1
            assert (
                await code_of(
                    orders.SubmitOrder(
                        limit_buy("api-1", price - 1_000_000), metadata=auth(TRADE_TOKEN)
                    )
                )
                == grpc.StatusCode.ALREADY_EXISTS
            )
            await orders.SubmitOrder(limit_buy("api-2", price), metadata=auth(TRADE_TOKEN))
            await asyncio.sleep(0)
            listed = await orders.ListOrders(
                orders_pb2.ListOrdersRequest(page_size=1), metadata=auth(READ_TOKEN)
            )
            assert [o.client_order_id for o in listed.orders] == ["api-2"]
            second = await orders.ListOrders(
                orders_pb2.ListOrdersRequest(page_size=1, page_token=listed.next_page_token),
                metadata=auth(READ_TOKEN),
            )
            assert [o.client_order_id for o in second.orders] == ["api-1"]
            assert not second.next_page_token
            cancelled = await orders.CancelOrder(
                orders_pb2.CancelOrderRequest(client_order_id="api-1"), metadata=auth(TRADE_TOKEN)
            )
            assert cancelled.order.status in {
                orders_pb2.ORDER_STATUS_PENDING_CANCEL,
                orders_pb2.ORDER_STATUS_CANCELED,
            }
            everything = await orders.CancelAllOrders(
                orders_pb2.CancelAllOrdersRequest(), metadata=auth(TRADE_TOKEN)
            )
            assert list(everything.client_order_ids) == ["api-2"]
            assert (
                await code_of(
                    orders.CancelOrder(
                        orders_pb2.CancelOrderRequest(client_order_id="nope"),
                        metadata=auth(TRADE_TOKEN),
                    )
                )
                == grpc.StatusCode.NOT_FOUND
            )

    run(main())


def test_submit_order_validation(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            price = best_bid(api.stack)
            cases: dict[str, orders_pb2.SubmitOrderRequest] = {}
            cases["order.client_order_id"] = limit_buy("", price)
            cases["order.client_order_id "] = limit_buy("bad id with spaces", price)
            no_side = limit_buy("v-1", price)
            no_side.order.side = orders_pb2.ORDER_SIDE_UNSPECIFIED
            cases["order.side"] = no_side
            fine = limit_buy("v-2", price)
            fine.order.quantity.CopyFrom(types_pb2.Decimal(units=123456789, precision=12))
            cases["order.quantity"] = fine
            no_price = limit_buy("v-3", price)
            no_price.order.ClearField("price")
            cases["order.price"] = no_price
            for field, request in cases.items():
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await orders.SubmitOrder(request, metadata=auth(TRADE_TOKEN))
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (raised.value.details() or "").startswith(field.strip())
            assert (
                await code_of(
                    orders.SubmitOrder(orders_pb2.SubmitOrderRequest(), metadata=auth(TRADE_TOKEN))
                )
                == grpc.StatusCode.INVALID_ARGUMENT
            )
            unknown = limit_buy("v-4", price)
            unknown.order.symbol = "DOGEBTC"
            assert (
                await code_of(orders.SubmitOrder(unknown, metadata=auth(TRADE_TOKEN)))
                == grpc.StatusCode.NOT_FOUND
            )
            assert not api.stack.orders.orders

    run(main())


def test_risk_service_halt_denies_and_resume(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            risk = api.stub(risk_pb2_grpc.RiskServiceStub)
            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            state = await risk.GetRiskState(
                risk_pb2.GetRiskStateRequest(), metadata=auth(READ_TOKEN)
            )
            assert state.state.state == risk_pb2.TRADING_STATE_ACTIVE
            assert len(state.state.denials) == len(risk_pb2.DenialReason.keys()) - 1
            resting = best_bid(api.stack) - 100 * 1_000_000
            await orders.SubmitOrder(limit_buy("r-1", resting), metadata=auth(TRADE_TOKEN))
            halted = await risk.Halt(
                risk_pb2.HaltRequest(reason="drill"), metadata=auth(TRADE_TOKEN)
            )
            assert halted.state.state == risk_pb2.TRADING_STATE_HALTED
            assert "drill" in halted.state.reason
            assert not api.stack.orders.open_orders() or all(
                o.status.value == "pending_cancel" for o in api.stack.orders.open_orders()
            )
            denied = await orders.SubmitOrder(limit_buy("r-2", resting), metadata=auth(TRADE_TOKEN))
            assert denied.order.status == orders_pb2.ORDER_STATUS_DENIED
            assert denied.denial_reason == risk_pb2.DENIAL_REASON_TRADING_HALTED
            assert (
                await code_of(risk.Halt(risk_pb2.HaltRequest(), metadata=auth(TRADE_TOKEN)))
                == grpc.StatusCode.INVALID_ARGUMENT
            )
            assert (
                await code_of(
                    risk.Resume(risk_pb2.ResumeRequest(reason="x"), metadata=auth(TRADE_TOKEN))
                )
                == grpc.StatusCode.PERMISSION_DENIED
            )
            assert (
                await code_of(
                    risk.Resume(
                        risk_pb2.ResumeRequest(reason="x", state=risk_pb2.TRADING_STATE_HALTED),
                        metadata=auth(ADMIN_TOKEN),
                    )
                )
                == grpc.StatusCode.INVALID_ARGUMENT
            )
            resumed = await risk.Resume(
                risk_pb2.ResumeRequest(reason="drill over"), metadata=auth(ADMIN_TOKEN)
            )
            assert resumed.state.state == risk_pb2.TRADING_STATE_ACTIVE
            assert resumed.state.equity.value

    run(main())


def test_market_data_and_portfolio(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            market = api.stub(market_data_pb2_grpc.MarketDataServiceStub)
            book = await market.GetBookSnapshot(
                market_data_pb2.GetBookSnapshotRequest(instrument=BTC, depth=5),
                metadata=auth(READ_TOKEN),
            )
            assert book.state == market_data_pb2.BOOK_STATE_VALID
            assert len(book.snapshot.bids) == 5 and len(book.snapshot.asks) == 5
            assert book.snapshot.bids[0].price.units == best_bid(api.stack)
            assert book.snapshot.bids[0].price.precision == 8
            assert book.snapshot.bids[0].price.units > book.snapshot.bids[1].price.units
            missing = types_pb2.InstrumentId(venue="binance", symbol="NOPE")
            assert (
                await code_of(
                    market.GetBookSnapshot(
                        market_data_pb2.GetBookSnapshotRequest(instrument=missing),
                        metadata=auth(READ_TOKEN),
                    )
                )
                == grpc.StatusCode.NOT_FOUND
            )
            others = KNOWN_INSTRUMENTS["binance"].values()
            syncing = next(i for i in others if i.symbol != "BTCUSDT")
            assert (
                await code_of(
                    market.GetBookSnapshot(
                        market_data_pb2.GetBookSnapshotRequest(
                            instrument=types_pb2.InstrumentId(
                                venue="binance", symbol=syncing.symbol
                            )
                        ),
                        metadata=auth(READ_TOKEN),
                    )
                )
                == grpc.StatusCode.FAILED_PRECONDITION
            )
            listed = await market.ListInstruments(
                market_data_pb2.ListInstrumentsRequest(venue="binance"), metadata=auth(READ_TOKEN)
            )
            assert "BTCUSDT" in [i.symbol for i in listed.instruments]

            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            market_buy = limit_buy("p-1", 0)
            market_buy.order.order_type = orders_pb2.ORDER_TYPE_MARKET
            market_buy.order.ClearField("price")
            await orders.SubmitOrder(market_buy, metadata=auth(TRADE_TOKEN))
            portfolio = api.stub(portfolio_pb2_grpc.PortfolioServiceStub)
            positions = await portfolio.GetPositions(
                portfolio_pb2.GetPositionsRequest(include_flat=True), metadata=auth(READ_TOKEN)
            )
            for position in positions.positions:
                assert position.quantity.precision == 8
            pnl = await portfolio.GetPnl(portfolio_pb2.GetPnlRequest(), metadata=auth(READ_TOKEN))
            assert len(pnl.pnl.net.value.partition(".")[2]) == 18

    run(main())


def test_authentication_and_scopes(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            kernel = api.stub(kernel_pb2_grpc.KernelServiceStub)
            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            request = kernel_pb2.GetVersionRequest()
            assert await code_of(kernel.GetVersion(request)) == grpc.StatusCode.UNAUTHENTICATED
            assert (
                await code_of(kernel.GetVersion(request, metadata=auth("wrong")))
                == grpc.StatusCode.UNAUTHENTICATED
            )
            assert (
                await code_of(kernel.GetVersion(request, metadata=(("authorization", READ_TOKEN),)))
                == grpc.StatusCode.UNAUTHENTICATED
            )
            price = best_bid(api.stack)
            assert (
                await code_of(
                    orders.SubmitOrder(limit_buy("s-1", price), metadata=auth(READ_TOKEN))
                )
                == grpc.StatusCode.PERMISSION_DENIED
            )
            assert not api.stack.orders.orders
            market = api.stub(market_data_pb2_grpc.MarketDataServiceStub)
            stream = market.StreamBooks(market_data_pb2.StreamBooksRequest(instruments=[BTC]))
            assert await code_of(stream.read()) == grpc.StatusCode.UNAUTHENTICATED
            calls = api.server.metrics.calls
            assert calls[("/tradekernel.v1.KernelService/GetVersion", "UNAUTHENTICATED")] == 3
            assert calls[("/tradekernel.v1.OrderService/SubmitOrder", "PERMISSION_DENIED")] == 1

    run(main())


def test_tokens_never_logged(
    tmp_path: Path, frames: list[RawFrame], caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            kernel = api.stub(kernel_pb2_grpc.KernelServiceStub)
            await kernel.GetVersion(kernel_pb2.GetVersionRequest(), metadata=auth(READ_TOKEN))
            await code_of(
                kernel.GetVersion(kernel_pb2.GetVersionRequest(), metadata=auth("guess-1"))
            )
            orders = api.stub(orders_pb2_grpc.OrderServiceStub)
            await code_of(
                orders.SubmitOrder(limit_buy("t-1", best_bid(api.stack)), metadata=auth(READ_TOKEN))
            )

    with caplog.at_level(logging.DEBUG):
        run(main())
    text = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "GetVersion" in text  # the calls were logged...
    for token in [*TOKENS, "guess-1"]:
        assert token not in text  # ...their tokens never


def test_health_and_reflection(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            health = health_pb2_grpc.HealthStub(api.channel)
            for service in ["", "tradekernel.v1.OrderService"]:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(api.channel)
            call = reflection.ServerReflectionInfo()
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            answer = await call.read()
            await call.done_writing()
            names = {s.name for s in answer.list_services_response.service}
            assert set(api.server.services) <= names
            assert "grpc.health.v1.Health" in names
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            stopping = asyncio.create_task(api.server.stop(grace=0.5))
            second = await watch.read()
            assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await stopping

    run(main())
