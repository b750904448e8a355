"""Trading on live data from the emulator: no order goes out while its book is invalid."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from trading_stack import TradingStack

from kernel.emulator import Emulator
from kernel.live import Backoff
from kernel.live.binance import BinanceMarketData
from kernel.risk import DenialReason
from tradekernel_sdk.orders import OrderEvent, OrderRejected, OrderSide, OrderType
from tradekernel_sdk.strategy import OrderIntent, Strategy
from tradekernel_sdk.types import BookState, Trade

BTC = (
    Path(__file__).resolve().parents[2]
    / "kernel"
    / "data"
    / "binance_spot"
    / "btcusdt_20240808_head12000.gz"
)
LOT = 1000  # 0.00001 BTC at 8 decimals


class Config(Strategy.Config, frozen=True):
    venue: str = "binance"
    symbol: str = "BTCUSDT"
    lots: int = 10


class TradeOnEveryTrade(Strategy):
    """Buy or sell a little at market on every public trade, noting the book's state."""

    config: Config
    book_state: Callable[[str], BookState]  # set by the test: what the risk engine will see

    def on_start(self) -> None:
        self.sent_while: list[BookState] = []
        self.rejections: list[OrderRejected] = []

    def on_trade(self, trade: Trade) -> None:
        position = self.context.position("binance", "BTCUSDT")
        self.sent_while.append(self.book_state("BTCUSDT"))
        self.context.submit(
            OrderIntent(
                symbol="BTCUSDT",
                venue="binance",
                side=OrderSide.SELL if position > 0 else OrderSide.BUY,
                order_type=OrderType.MARKET,
                quantity=self.config.lots * LOT,
            )
        )

    def on_order_event(self, event: OrderEvent) -> None:
        if isinstance(event, OrderRejected):
            self.rejections.append(event)


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_orders_on_an_invalid_live_book_are_denied_with_their_reason(tmp_path: Path) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    TradeOnEveryTrade.book_state = stack.feed.book_state
    stack.add("taker", TradeOnEveryTrade, Config())
    strategy = stack.runner.slots["taker"].strategy
    assert isinstance(strategy, TradeOnEveryTrade)

    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=10) as emulator:
            live = BinanceMarketData(
                stack.feed,
                ["BTCUSDT"],
                ws_url=emulator.ws_url,
                rest_url=emulator.http_url,
                resync_after_s=0.5,
                backoff=Backoff(base_s=0.05, cap_s=0.2, rng=random.Random(0)),
            )
            stack.runner.start()
            task = asyncio.create_task(live.run())
            await until(lambda: stack.feed.book_state("BTCUSDT") is BookState.VALID)
            await until(lambda: BookState.VALID in strategy.sent_while)
            # A lost diff: the book is invalid until the next snapshot, while trades flow on.
            emulator.faults.drop_frames(1, after=2, match="@depth")
            await until(lambda: stack.feed.stats.gaps == 1)
            await until(lambda: stack.feed.book_state("BTCUSDT") is BookState.VALID)
            sent = len(strategy.sent_while)
            await until(lambda: len(strategy.sent_while) > sent + 3)
            live.stop()
            await asyncio.wait_for(task, 5)
            stack.runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    while_invalid = sum(state is not BookState.VALID for state in strategy.sent_while)
    book_denials = [r for r in strategy.rejections if DenialReason.BOOK_INVALID.value in r.reason]
    assert while_invalid > 0, "no trade arrived while the book was invalid: the test proves nothing"
    assert len(book_denials) == while_invalid
    assert stack.orders.denials[DenialReason.BOOK_INVALID.value] == while_invalid
    assert stack.paper.orders > 0
    assert stack.paper.orders <= len(strategy.sent_while) - while_invalid
    stack.close()
