"""The asyncio client against a real server on a real trading stack, on one event loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_client_sync import USDT, limit_buy
from test_server_api import ADMIN_TOKEN, READ_TOKEN, TRADE_TOKEN, best_bid, frames, run, running

from kernel.adapters.base import RawFrame
from kernel.plugins import PluginHost
from tradekernel_sdk.client import (
    AsyncKernelClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from tradekernel_sdk.orders import OrderStatus
from tradekernel_sdk.types import BookSnapshot

__all__ = ["frames"]


def test_async_client_every_method(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            address = f"127.0.0.1:{api.port}"
            book = api.stack.feed.book("BTCUSDT")
            assert book is not None
            price = best_bid(api.stack) - 100 * USDT
            async with (
                AsyncKernelClient(address, READ_TOKEN) as reader,
                AsyncKernelClient(address, TRADE_TOKEN) as trader,
                AsyncKernelClient(address, ADMIN_TOKEN) as admin,
            ):
                assert (await reader.version()).api_version == "v1"
                assert (await reader.status()).trading_state == "active"
                assert (await reader.risk_state()).state == "active"
                snapshot = await reader.book_snapshot("binance", "BTCUSDT", depth=5)
                assert snapshot.bids == tuple(book.bid_levels(5))
                assert snapshot.asks == tuple(book.ask_levels(5))

                view = await trader.submit_order(limit_buy("a-1", price))
                assert view.order.status is OrderStatus.PENDING_NEW and view.order.price == price
                assert (await trader.submit_order(limit_buy("a-1", price))).replayed
                await trader.submit_order(limit_buy("a-2", price))
                listed = await reader.list_orders()
                assert [v.order.client_order_id for v in listed] == ["a-2", "a-1"]
                cancelled = await trader.cancel_order("a-1")
                assert cancelled.order.status in {OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED}
                assert await trader.cancel_all() == ["a-2"]
                with pytest.raises(NotFound):
                    await trader.cancel_order("nope")
                assert isinstance(await reader.positions(include_flat=True), list)

                with pytest.raises(PermissionDenied):
                    await reader.halt("drill")
                assert (await trader.halt("drill")).state == "halted"
                denied = await trader.submit_order(limit_buy("a-3", price))
                assert denied.denial_reason == "trading_halted"
                with pytest.raises(PermissionDenied):
                    await trader.resume("over")
                with pytest.raises(InvalidArgument):
                    await admin.resume("over", "sideways")
                assert (await admin.resume("over", "reducing")).state == "reducing"
                assert (await admin.resume("over")).state == "active"

                stream = reader.stream_books([("binance", "BTCUSDT")], depth=3, timeout=10)
                first = await anext(stream)
                assert isinstance(first, BookSnapshot)
                assert first.bids == tuple(book.bid_levels(3))
                await stream.aclose()

            async with AsyncKernelClient(address, "wrong-token") as stranger:
                with pytest.raises(Unauthenticated) as raised:
                    await stranger.version()
                assert "wrong-token" not in str(raised.value)
                with pytest.raises(Unauthenticated):
                    await anext(stranger.stream_books([("binance", "BTCUSDT")], timeout=10))

    run(main())


def test_async_client_plugins_and_models(tmp_path: Path, frames: list[RawFrame]) -> None:
    models = tmp_path / "models"
    (models / "spread" / "v1").mkdir(parents=True)
    (models / "spread" / "v1" / "metadata.json").write_text('{"stage": "shadow"}')

    async def main() -> None:
        async with running(
            tmp_path, frames, plugins=PluginHost(environ={}), model_dir=models
        ) as api:
            address = f"127.0.0.1:{api.port}"
            async with (
                AsyncKernelClient(address, READ_TOKEN) as reader,
                AsyncKernelClient(address, ADMIN_TOKEN) as admin,
            ):
                (strategies,) = [p for p in await reader.plugins() if p.name == "strategies"]
                assert strategies.status == "enabled"
                assert "imbalance" in strategies.registers["strategies"]
                with pytest.raises(PermissionDenied):
                    await reader.disable_plugin("strategies")
                assert (await admin.disable_plugin("strategies")).status == "disabled"
                assert (await admin.enable_plugin("strategies")).status == "enabled"
                with pytest.raises(NotFound):
                    await admin.enable_plugin("nope")
                (model,) = await reader.models()
                assert (model.name, model.version, model.stage) == ("spread", "v1", "shadow")
                assert await reader.models("other") == []

    run(main())
