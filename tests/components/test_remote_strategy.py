"""A strategy served out of process trades through the kernel as one inside it does."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from component_harness import linked
from component_samples import IMBALANCE_SETTINGS, OneShot, RecordingImbalance

from kernel.adapters.base import RawFrame
from kernel.risk import RiskConfig
from kernel.risk.config import InstrumentLimits
from tradekernel_sdk.orders import OrderStatus


def test_remote_imbalance_orders_pass_risk_and_a_denial_reaches_it(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    # 0.002 BTC at most: the strategy wants up to 0.005, so risk denies some of its buys.
    risk = RiskConfig(defaults=InstrumentLimits(max_position=Decimal("0.002")))

    async def main() -> None:
        async with linked(
            tmp_path, RecordingImbalance, name="imb", settings=IMBALANCE_SETTINGS, risk=risk
        ) as run:
            await run.feed(btc_frames)
            orders = [o for o in run.stack.orders.orders.values() if o.strategy == "imb"]
            statuses = {o.status for o in orders}
            assert OrderStatus.FILLED in statuses or OrderStatus.PARTIALLY_FILLED in statuses
            denied = [o for o in orders if o.status is OrderStatus.DENIED]
            assert denied, f"expected a risk denial, got {statuses}"
            strategy = run.component
            heard = {u.client_order_id for u in strategy.updates if u.status is OrderStatus.DENIED}
            assert {o.client_order_id for o in denied} <= heard
            assert strategy.books > 100
            assert run.link.stats.intents == len(orders)

    asyncio.run(main())


def test_an_intent_for_an_unknown_instrument_is_refused_and_the_session_stays_up(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    settings = {"venue": "binance", "symbol": "BTCUSDT", "target_symbol": "NOPEUSDT"}

    async def main() -> None:
        async with linked(tmp_path, OneShot, name="oneshot", settings=settings) as run:
            await run.feed(btc_frames[:600])
            strategy = run.component
            assert len(strategy.errors) == 1
            assert "unknown instrument binance.NOPEUSDT" in strategy.errors[0][1]
            assert run.link.stats.refused == 1
            assert not run.stack.orders.orders
            books_then = strategy.books
            await run.feed(btc_frames[600:900])
            assert run.link.state.value == "up"
            assert strategy.books > books_then

    asyncio.run(main())


def test_in_process_and_remote_imbalance_place_the_same_orders_in_a_lockstep_replay(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    from trading_stack import TradingStack

    from tradekernel_sdk.strategy import load_strategy_config
    from tradekernel_strategies.imbalance import Imbalance

    def placed(stack: TradingStack, name: str) -> list[tuple[object, ...]]:
        return [
            (o.side, o.order_type, o.quantity, o.price, o.status, o.filled_quantity)
            for o in stack.orders.orders.values()
            if o.strategy == name
        ]

    inside = TradingStack(tmp_path / "inside.tkj")
    inside.add("imb", Imbalance, load_strategy_config(Imbalance, IMBALANCE_SETTINGS, "imb"))
    inside.run(btc_frames)
    expected = placed(inside, "imb")
    inside.close()
    assert len(expected) >= 3

    async def main() -> None:
        async with linked(tmp_path, Imbalance, name="imb", settings=IMBALANCE_SETTINGS) as run:
            await run.feed(btc_frames)
            assert placed(run.stack, "imb") == expected

    asyncio.run(main())
