"""The model-signal strategy trades on served predictions through risk and the journal."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from trading_stack import TradingStack

from kernel.orders.model import Order
from kernel.serving import ModelRegistry, ServingEngine
from serving.support import bundled_frames, write_book_version
from tradekernel_sdk.orders import OrderSide
from tradekernel_sdk.predictions import Prediction
from tradekernel_strategies import STRATEGIES
from tradekernel_strategies.model_signal import ModelSignal


def test_orders_follow_confident_predictions_and_pass_risk_and_the_journal(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    write_book_version(root, "direction", "1")
    stack = TradingStack(tmp_path / "journal.tkj")
    registry = ModelRegistry(root, stack.journal)
    config = ModelSignal.Config(
        venue="binance",
        symbol="BTCUSDT",
        tick=1_000_000,
        lot=1_000,
        quantity=100_000,
        max_position=300_000,
        allow_short=True,
        cooldown_ns=500_000_000,
        model="direction",
        min_confidence_bps=6_000,
    )
    stack.add("model_btc", STRATEGIES["model_signal"], config)
    strategy = stack.runner.slots["model_btc"].strategy
    assert isinstance(strategy, ModelSignal)

    # After the strategy has seen each answer: what it was, and how many orders there were.
    seen: list[tuple[Prediction, int]] = []

    def after_strategy(prediction: Prediction) -> None:
        seen.append((prediction, len(mine())))

    def mine() -> list[Order]:
        return [o for o in stack.orders.orders.values() if o.strategy == "model_btc"]

    stack.bus.subscribe("model.prediction.binance.BTCUSDT", after_strategy)
    engine = ServingEngine(stack.bus, registry, "direction", books=stack.market.book)
    engine.start()

    asyncio.run(registry.load("direction", "1"))
    registry.promote("direction", "1")
    stack.run(bundled_frames())
    engine.stop()

    assert strategy.predictions == len(seen) > 1_000
    orders = {o.client_order_id: o for o in stack.orders.orders.values()}
    placed = 0
    before = 0
    ordered = sorted(orders.values(), key=lambda o: int(o.client_order_id.rsplit("-", 1)[1]))
    for prediction, count in seen:
        if count > before:
            assert count == before + 1  # one order at a time
            order = ordered[before]
            assert prediction.confidence >= 0.6
            expected = OrderSide.BUY if prediction.label == "up" else OrderSide.SELL
            assert prediction.label in {"up", "down"} and order.side is expected
            placed += 1
        before = count
    assert placed == len(ordered) > 0
    statuses = Counter(order.status.value for order in ordered)
    assert statuses["filled"] > 0, statuses  # real orders, filled by the paper venue
    submits = [r for r in stack.journal.records_since(0) if r.kind == "submit"]
    assert len(submits) >= placed
    assert engine.stats.failed == 0
    registry.close()
    stack.close()
