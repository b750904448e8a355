"""The synchronous client against a real server on a real trading stack.

The server runs on its own event loop in a thread (:class:`LiveServer`), so the
blocking client calls it as any outside program would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from test_server_api import (
    ADMIN_TOKEN,
    READ_TOKEN,
    TRADE_TOKEN,
    Running,
    best_bid,
    frames,
    running,
)

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from tradekernel_sdk.client import (
    AlreadyExists,
    ConversionError,
    FailedPrecondition,
    InvalidArgument,
    KernelClient,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    _units,
)
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from tradekernel_sdk.proto.tradekernel.v1 import types_pb2
from tradekernel_sdk.types import BookSnapshot, BookState

__all__ = ["LiveServer", "frames", "limit_buy", "live"]

USDT = 100_000_000  # one USDT at BTCUSDT's 8 price decimals


class LiveServer:
    """A server on a trading stack, served from an event loop in a background thread."""

    def __init__(self, tmp_path: Path, frames: list[RawFrame], **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._context: AbstractAsyncContextManager[Running] = running(tmp_path, frames, **options)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.api = asyncio.run_coroutine_threadsafe(self._context.__aenter__(), self.loop).result(
            30
        )
        self.address = f"127.0.0.1:{self.api.port}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.__aexit__(None, None, None), self.loop
        ).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def best_bid(self) -> int:
        """Return the stack's best BTCUSDT bid, read on the server's loop."""

        async def read() -> int:
            return best_bid(self.api.stack)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)


@pytest.fixture
def live(tmp_path: Path, frames: list[RawFrame]) -> Iterator[LiveServer]:
    """Yield a live server on port 0."""
    with LiveServer(tmp_path, frames) as server:
        yield server


def limit_buy(client_order_id: str, price: int, quantity: int = 100_000) -> OrderRequest:
    """Return an SDK limit buy of BTCUSDT (``quantity`` at 8 decimals)."""
    return OrderRequest(
        client_order_id=client_order_id,
        venue="binance",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        price=price,
    )


def test_read_methods(live: LiveServer) -> None:
    with KernelClient(live.address, READ_TOKEN) as client:
        version = client.version()
        assert version.api_version == "v1" and version.kernel_version
        status = client.status()
        assert status.trading_state == "active"
        assert [c.name for c in status.components] == ["trading"]
        assert status.uptime_ns > 0
        books = {(b.venue, b.symbol): b for b in status.books}
        assert books["binance", "BTCUSDT"].state is BookState.VALID
        risk = client.risk_state()
        assert risk.state == "active"
        assert risk.denials["trading_halted"] == 0
        assert risk.equity is not None
        instruments = client.instruments("binance")
        btc = next(i for i in instruments if i.symbol == "BTCUSDT")
        assert btc == KNOWN_INSTRUMENTS["binance"]["BTCUSDT"]


def test_book_snapshot_is_exact(live: LiveServer) -> None:
    with KernelClient(live.address, READ_TOKEN) as client:
        snapshot = client.book_snapshot("binance", "BTCUSDT", depth=5)
        assert isinstance(snapshot, BookSnapshot)
        book = live.api.stack.feed.book("BTCUSDT")
        assert book is not None
        assert snapshot.bids == tuple(book.bid_levels(5))
        assert snapshot.asks == tuple(book.ask_levels(5))
        assert snapshot.sequence == book.sequence
        full = client.book_snapshot("binance", "BTCUSDT")
        assert len(full.bids) == len(book.bid_levels())
        with pytest.raises(NotFound):
            client.book_snapshot("binance", "NOPE")
        syncing = next(
            i.symbol for i in KNOWN_INSTRUMENTS["binance"].values() if i.symbol != "BTCUSDT"
        )
        with pytest.raises(FailedPrecondition) as raised:
            client.book_snapshot("binance", syncing)
        assert raised.value.code == "FAILED_PRECONDITION"
        assert "not VALID" in raised.value.message


def test_orders_submit_list_cancel(live: LiveServer) -> None:
    price = live.best_bid() - 100 * USDT  # rests
    with KernelClient(live.address, TRADE_TOKEN) as client:
        view = client.submit_order(limit_buy("c-1", price))
        assert view.order.status is OrderStatus.PENDING_NEW
        assert view.order.price == price and view.order.quantity == 100_000
        assert view.order.strategy == "api"
        assert (view.price_precision, view.size_precision) == (8, 8)
        assert view.quantity_text == "0.00100000"
        assert view.denial_reason is None and not view.replayed
        again = client.submit_order(limit_buy("c-1", price))
        assert again.replayed and again.order.client_order_id == "c-1"
        with pytest.raises(AlreadyExists):
            client.submit_order(limit_buy("c-1", price - USDT))
        with pytest.raises(InvalidArgument) as raised:
            client.submit_order(limit_buy("bad id", price))
        assert raised.value.message.startswith("order.client_order_id")
        client.submit_order(limit_buy("c-2", price))
        listed = client.list_orders()
        assert [v.order.client_order_id for v in listed] == ["c-2", "c-1"]
        assert listed[1].order.price == price
        assert [v.order.client_order_id for v in client.list_orders(limit=1)] == ["c-2"]
        cancelled = client.cancel_order("c-1")
        assert cancelled.order.status in {OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED}
        assert client.cancel_all() == ["c-2"]
        with pytest.raises(NotFound) as missing:
            client.cancel_order("nope")
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(NotFound):
            client.submit_order(
                OrderRequest("c-3", "binance", "DOGEBTC", OrderSide.BUY, OrderType.LIMIT, 1, 1)
            )


def test_market_order_and_positions(live: LiveServer) -> None:
    with KernelClient(live.address, TRADE_TOKEN) as client:
        market = OrderRequest(
            "m-1", "binance", "BTCUSDT", OrderSide.BUY, OrderType.MARKET, quantity=100_000
        )
        view = client.submit_order(market)
        assert view.order.price is None and view.price_text == ""
        positions = client.positions(include_flat=True)
        for position in positions:
            assert position.size_precision == 8
            assert position.quantity_text.count(".") == 1


def test_halt_resume_and_scopes(live: LiveServer) -> None:
    price = live.best_bid() - 100 * USDT
    with (
        KernelClient(live.address, READ_TOKEN) as reader,
        KernelClient(live.address, TRADE_TOKEN) as trader,
        KernelClient(live.address, ADMIN_TOKEN) as admin,
    ):
        with pytest.raises(PermissionDenied) as denied:
            reader.halt("drill")
        assert denied.value.code == "PERMISSION_DENIED"
        with pytest.raises(PermissionDenied):
            reader.submit_order(limit_buy("s-1", price))
        halted = trader.halt("drill")
        assert halted.state == "halted" and "drill" in halted.reason
        refused = trader.submit_order(limit_buy("s-2", price))
        assert refused.order.status is OrderStatus.DENIED
        assert refused.denial_reason == "trading_halted"
        with pytest.raises(InvalidArgument):
            trader.halt("")
        with pytest.raises(PermissionDenied):
            trader.resume("drill over")
        with pytest.raises(InvalidArgument):
            admin.resume("x", "halted")
        resumed = admin.resume("drill over")
        assert resumed.state == "active"
        assert reader.risk_state().denials["trading_halted"] == 1


def test_authentication_errors(live: LiveServer) -> None:
    for token in ["wrong-token", None]:
        with KernelClient(live.address, token) as client, pytest.raises(Unauthenticated) as raised:
            client.version()
        assert raised.value.code == "UNAUTHENTICATED"
        assert "wrong-token" not in str(raised.value)


def test_stream_books(live: LiveServer) -> None:
    with KernelClient(live.address, READ_TOKEN) as client:
        stream = client.stream_books([("binance", "BTCUSDT")], depth=3, timeout=10)
        first = next(stream)
        assert isinstance(first, BookSnapshot)
        book = live.api.stack.feed.book("BTCUSDT")
        assert book is not None
        assert first.bids == tuple(book.bid_levels(3))
        stream.close()  # cancels the call
        with KernelClient(live.address, "wrong") as stranger, pytest.raises(Unauthenticated):
            next(stranger.stream_books([("binance", "BTCUSDT")], timeout=10))


def test_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    with KernelClient("127.0.0.1:1", READ_TOKEN, timeout=2) as client:
        with pytest.raises(Unavailable) as raised:
            client.version()
        assert raised.value.code == "UNAVAILABLE"


def test_decimal_conversion_is_exact() -> None:
    assert _units(types_pb2.Decimal(units=6173763, precision=2), 8) == 6173763000000
    assert _units(types_pb2.Decimal(units=6173763000000, precision=8), 2) == 6173763
    assert _units(types_pb2.Decimal(units=-1500, precision=3), 1) == -15
    with pytest.raises(ConversionError):
        _units(types_pb2.Decimal(units=6173763, precision=8), 2)
    with pytest.raises(ConversionError):
        _units(types_pb2.Decimal(units=-5, precision=1), 0)
