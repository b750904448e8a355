"""The mid-price momentum strategy on hand-built books."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tradekernel_sdk import StrategyConfigError
from tradekernel_sdk.orders import OrderSide, TimeInForce
from tradekernel_sdk.testing import HarnessFactory, StrategyHarness
from tradekernel_sdk.types import AggressorSide, BookDelta, BookSnapshot, BookState, Trade
from tradekernel_strategies import Momentum

from .support import (
    INSTRUMENT,
    QUANTITY,
    SECOND,
    SYMBOL,
    TICK,
    VENUE,
    StaticBook,
    expired,
    filled,
    price,
    status,
)

CONFIG: dict[str, Any] = {
    **INSTRUMENT,
    "max_position": 2 * QUANTITY,
    "fast_ns": SECOND,
    "slow_ns": 4 * SECOND,
    "warmup_ns": 2 * SECOND,
    "band_ticks": 1,
    "cooldown_ns": SECOND // 2,
}

BASE = price("60000.00")
HALF = SECOND // 2


def quote(ticks: int, ts: int) -> BookSnapshot:
    """Return a one-tick-wide book whose bid is ``ticks`` ticks above 60000.00."""
    bid = BASE + ticks * TICK
    return BookSnapshot(
        VENUE, SYMBOL, ((bid, 100_000_000),), ((bid + TICK, 100_000_000),), 1, ts, ts
    )


def mid(ticks: int) -> float:
    """Return the mid of :func:`quote` in fixed-point price units."""
    return BASE + ticks * TICK + TICK / 2


def harness_for(factory: HarnessFactory, **overrides: Any) -> StrategyHarness[Momentum]:
    """Return a started harness around a momentum strategy."""
    harness = factory(Momentum, {**CONFIG, **overrides})
    harness.start()
    return harness


def flat_then(harness: StrategyHarness[Momentum], path: list[int], until: int = 3 * SECOND) -> int:
    """Feed a flat mid every half second up to ``until``, then ``path`` (ticks); return the time."""
    ts = 0
    while ts <= until:
        harness.feed(quote(0, ts))
        ts += HALF
    for ticks in path:
        harness.feed(quote(ticks, ts))
        ts += HALF
    return ts


def test_the_averages_follow_the_continuous_time_formula(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    assert harness.strategy.fast == harness.strategy.slow == mid(0)
    harness.feed(quote(10, HALF))
    step = mid(10) - mid(0)
    assert harness.strategy.fast == pytest.approx(mid(0) + step * (1 - math.exp(-0.5)))
    assert harness.strategy.slow == pytest.approx(mid(0) + step * (1 - math.exp(-0.5 / 4)))
    harness.feed(quote(30, HALF))  # same time: no weight, nothing changes
    assert harness.strategy.fast == pytest.approx(mid(0) + step * (1 - math.exp(-0.5)))


def test_buys_at_the_best_ask_on_a_cross_up(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    flat_then(harness, [20])
    assert harness.strategy.signal == 1
    [intent] = harness.intents
    assert (intent.side, intent.price, intent.quantity) == (
        OrderSide.BUY,
        BASE + 21 * TICK,
        QUANTITY,
    )
    assert intent.time_in_force is TimeInForce.IOC


def test_keeps_buying_up_to_max_position_while_the_trend_lasts(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    ts = flat_then(harness, [])
    for ticks in (20, 40, 60, 80):
        harness.feed(quote(ticks, ts))
        if harness.strategy.working:
            [client_order_id] = harness.strategy.working
            harness.feed(filled(client_order_id, QUANTITY, BASE + (ticks + 1) * TICK, ts=ts))
        ts += HALF
    assert [intent.side for intent in harness.intents] == [OrderSide.BUY, OrderSide.BUY]
    assert harness.strategy.position() == 2 * QUANTITY


def test_a_cross_down_sells_the_holdings(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, max_position=QUANTITY)
    ts = flat_then(harness, [20])
    harness.feed(filled(harness.submitted[0].client_order_id, QUANTITY, BASE + 21 * TICK, ts=ts))
    for ticks in (20, 0, -40, -80):
        harness.feed(quote(ticks, ts))
        ts += HALF
    assert harness.strategy.signal == -1
    sell = harness.intents[-1]
    assert (sell.side, sell.price, sell.quantity) == (OrderSide.SELL, BASE - 40 * TICK, QUANTITY)


def test_a_trend_that_began_during_the_warm_up_is_not_a_cross(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    ts = 0
    for ticks in (0, 20, 40, 60, 60, 60, 60, 60):  # rises before 2 s, then flat
        harness.feed(quote(ticks, ts))
        ts += HALF
    assert harness.strategy.regime == 1
    assert harness.strategy.signal == 0
    assert harness.intents == []
    for ticks in (0, -40):  # a cross down: a sell signal, but nothing is held
        harness.feed(quote(ticks, ts))
        ts += HALF
    assert harness.strategy.signal == -1
    assert harness.intents == []
    for ticks in (40, 120, 200):
        harness.feed(quote(ticks, ts))
        ts += HALF
    assert [intent.side for intent in harness.intents] == [OrderSide.BUY]


def test_moves_inside_the_band_do_not_cross(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, band_ticks=50)
    flat_then(harness, [5, 10, 15, 20])
    assert harness.strategy.regime == 0
    assert harness.intents == []


def test_trades_can_drive_the_averages(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, source="trade")
    ts = 0
    for ticks in (0, 0, 0, 0, 0, 0, 0, 20, 40):
        harness.feed(
            Trade(VENUE, SYMBOL, BASE + ticks * TICK, 1_000, AggressorSide.BUY, str(ts), ts, ts)
        )
        harness.feed(quote(0, ts))  # a flat book: only the trades move the averages
        ts += HALF
    assert harness.strategy.signal == 1
    assert [intent.side for intent in harness.intents] == [OrderSide.BUY]


def test_an_invalid_book_cancels_and_waits_for_a_fresh_cross(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    ts = flat_then(harness, [20])
    working = harness.submitted[0].client_order_id
    harness.feed(status(BookState.INVALID, ts=ts))
    assert harness.cancels == [working]
    harness.feed(expired(working, ts=ts))
    harness.feed(status(BookState.VALID, ts=ts + SECOND))
    for ticks in (40, 60):
        ts += SECOND
        harness.feed(quote(ticks, ts))
    assert len(harness.intents) == 1, "the signal from before the gap is not acted on"


@pytest.mark.parametrize(
    "view",
    [
        StaticBook(),
        StaticBook([(BASE, 1)], []),
        StaticBook([], [(BASE, 1)]),
        StaticBook([(BASE, 0)], [(BASE + TICK, 0)]),
        StaticBook([(0, 0)], [(0, 0)]),
    ],
)
def test_odd_books_give_no_order_and_no_error(
    strategy_harness: HarnessFactory, view: StaticBook
) -> None:
    harness = harness_for(strategy_harness)
    flat_then(harness, [20])
    harness.feed(expired(harness.submitted[0].client_order_id, ts=4 * SECOND))
    harness.strategy.on_book(BookDelta(VENUE, SYMBOL, (), (), 1, 1, 9 * SECOND, 9 * SECOND), view)
    assert len(harness.intents) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slow_ns": SECOND}, "slow_ns must be longer than fast_ns"),
        ({"fast_ns": 0}, "fast_ns must be positive"),
        ({"warmup_ns": -1}, "warmup_ns must not be negative"),
        ({"band_ticks": -1}, "band_ticks must not be negative"),
        ({"source": "bars"}, "strategies.momentum.source: Invalid enum value 'bars'"),
        ({"lot": 3}, "quantity must be a positive multiple of lot (3)"),
    ],
)
def test_refuses_a_bad_configuration(
    strategy_harness: HarnessFactory, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrategyConfigError) as error:
        strategy_harness(Momentum, {**CONFIG, **overrides}, name="momentum")
    assert message in str(error.value)
