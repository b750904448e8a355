"""From real frames to fills: risk, journal, positions and fault isolation."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.risk import InstrumentLimits, RiskConfig
from kernel.trading import RunnerPolicy
from tradekernel_sdk.orders import (
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatus,
    OrderType,
)
from tradekernel_sdk.strategy import BookView, OrderIntent, Strategy
from tradekernel_sdk.types import BookDelta, BookSnapshot

LOT = 1000  # 0.00001 BTC at 8 decimals


class Config(Strategy.Config, frozen=True):
    venue: str = "binance"
    symbol: str = "BTCUSDT"
    every: int = 50
    lots: int = 100


class FlipFlop(Strategy):
    """Buy, then sell, at market every ``every`` book updates."""

    config: Config

    def on_start(self) -> None:
        self.updates = 0
        self.events: list[OrderEvent] = []

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.updates += 1
        if self.updates % self.config.every:
            return
        position = self.context.position("binance", "BTCUSDT")
        side = OrderSide.SELL if position > 0 else OrderSide.BUY
        self.context.submit(
            OrderIntent(
                symbol="BTCUSDT",
                venue="binance",
                side=side,
                order_type=OrderType.MARKET,
                quantity=self.config.lots * LOT,
            )
        )

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)


class Raiser(Strategy):
    config: Config

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        raise RuntimeError("bug in strategy")


class Sleeper(Strategy):
    config: Config

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        time.sleep(0.003)


def test_orders_fill_and_positions_match_the_paper_venue(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    stack.add("flip", FlipFlop, Config())
    stack.run(btc_frames)
    orders = stack.orders.orders.values()
    filled = [order for order in orders if order.status is OrderStatus.FILLED]
    assert len(filled) >= 10
    position = stack.orders.portfolio.quantity("paper", "BTCUSDT")
    bought = sum(o.filled_quantity for o in filled if o.side is OrderSide.BUY)
    sold = sum(o.filled_quantity for o in filled if o.side is OrderSide.SELL)
    assert position == bought - sold
    strategy = stack.runner.slots["flip"].strategy
    assert isinstance(strategy, FlipFlop)
    venue_fills = [event for event in strategy.events if isinstance(event, OrderFilled)]
    assert len(venue_fills) == stack.paper.fills
    signed = sum(
        fill.quantity
        if stack.orders.orders[fill.client_order_id].side is OrderSide.BUY
        else -fill.quantity
        for fill in venue_fills
    )
    assert signed == position
    stack.close()


def test_journal_replay_rebuilds_orders_and_positions_exactly(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    journal = tmp_path / "journal.tkj"
    first = TradingStack(journal)
    first.add("flip", FlipFlop, Config())
    first.run(btc_frames)
    expected = {
        order_id: (order.status, order.filled_quantity, order.filled_notional, order.fees)
        for order_id, order in first.orders.orders.items()
    }
    expected_position = first.orders.portfolio.quantity("paper", "BTCUSDT")
    expected_realised = first.orders.portfolio.positions[("paper", "BTCUSDT")].realised
    first.close()

    second = TradingStack(journal)
    assert second.recovered > 0
    rebuilt = {
        order_id: (order.status, order.filled_quantity, order.filled_notional, order.fees)
        for order_id, order in second.orders.orders.items()
    }
    assert rebuilt == expected
    assert second.orders.portfolio.quantity("paper", "BTCUSDT") == expected_position
    assert second.orders.portfolio.positions[("paper", "BTCUSDT")].realised == expected_realised
    # Client order ids continue after the journaled ones: no collision after a restart.
    second.add("flip", FlipFlop, Config())
    context = second.runner.slots["flip"].context
    intent = OrderIntent(
        symbol="BTCUSDT",
        venue="binance",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=LOT,
    )
    client_order_id = context.submit(intent)
    assert client_order_id == f"flip-{len(expected) + 1}"
    assert client_order_id not in expected
    second.close()


def test_risk_denial_reaches_the_strategy_as_a_rejection(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    limits = InstrumentLimits(max_position=Decimal("0.0005"))
    risk = RiskConfig(instruments={"binance.BTCUSDT": limits})
    stack = TradingStack(tmp_path / "journal.tkj", risk=risk)
    stack.add("flip", FlipFlop, Config(lots=100))  # 0.001 BTC per order, over the limit
    stack.run(btc_frames)
    strategy = stack.runner.slots["flip"].strategy
    assert isinstance(strategy, FlipFlop)
    rejections = [event for event in strategy.events if isinstance(event, OrderRejected)]
    assert rejections
    assert all(event.reason.startswith("risk: ") for event in rejections)
    assert sum(stack.orders.denials.values()) == len(rejections)
    assert stack.paper.orders == 0
    stack.close()


def test_raising_strategy_is_quarantined_and_others_keep_trading(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj", policy=RunnerPolicy(max_errors=5))
    stack.add("raiser", Raiser, Config())
    stack.add("flip", FlipFlop, Config())
    stack.run(btc_frames)
    report = stack.runner.report()
    assert report["raiser"]["quarantined"]
    assert report["raiser"]["errors"] == 5
    assert not report["flip"]["quarantined"]
    assert any(o.status is OrderStatus.FILLED for o in stack.orders.orders.values())
    stack.close()


def test_slow_strategy_is_counted_and_does_not_stop_the_others(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    policy = RunnerPolicy(budget_ns=1_000_000, max_overruns=3)
    stack = TradingStack(tmp_path / "journal.tkj", policy=policy)
    stack.add("sleeper", Sleeper, Config())
    stack.add("flip", FlipFlop, Config())
    stack.run(btc_frames)
    report = stack.runner.report()
    assert report["sleeper"]["overruns"] == 3
    assert report["sleeper"]["quarantined"]
    assert "over budget" in report["sleeper"]["quarantine_reason"]
    assert any(o.status is OrderStatus.FILLED for o in stack.orders.orders.values())
    stack.close()
