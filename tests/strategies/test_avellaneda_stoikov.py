"""The Avellaneda-Stoikov market maker on hand-built books."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tradekernel_sdk import StrategyConfigError
from tradekernel_sdk.orders import OrderSide, OrderType, TimeInForce
from tradekernel_sdk.testing import HarnessFactory, StrategyHarness
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState
from tradekernel_strategies import AvellanedaStoikov
from tradekernel_strategies.avellaneda_stoikov import REQUOTE_TIMER, MidVariance, QuotePlan

from .support import (
    INSTRUMENT,
    LOT,
    QUANTITY,
    SECOND,
    SYMBOL,
    TICK,
    VENUE,
    StaticBook,
    canceled,
    filled,
    price,
    rejected,
    status,
)

GAMMA, KAPPA = 1e-4, 0.05

CONFIG: dict[str, Any] = {
    **INSTRUMENT,
    "max_inventory": 3 * QUANTITY,
    "gamma": GAMMA,
    "kappa": KAPPA,
    "horizon_ns": SECOND,
    "vol_window_ns": 10 * SECOND,
    "warmup_ns": 0,
    "requote_ticks": 5,
    "requote_interval_ns": 5 * SECOND,
    "allow_short": True,
}

BASE = price("60000.00")
MS = 1_000_000


def quote(ticks: int, ts: int, width: int = 1) -> BookSnapshot:
    """Return a book whose bid is ``ticks`` ticks above 60000.00 and ``width`` ticks wide."""
    bid = BASE + ticks * TICK
    return BookSnapshot(VENUE, SYMBOL, ((bid, 10**8),), ((bid + width * TICK, 10**8),), 1, ts, ts)


def model(
    mid: float, inventory: float, variance: float, gamma: float = GAMMA, horizon: float = 1.0
) -> tuple[float, float]:
    """Return the paper's reservation price and total spread (ticks, lots, ticks^2/s, s)."""
    reservation = mid - inventory * gamma * variance * horizon
    spread = gamma * variance * horizon + 2 / gamma * math.log(1 + gamma / KAPPA)
    return reservation, spread


def harness_for(factory: HarnessFactory, **overrides: Any) -> StrategyHarness[AvellanedaStoikov]:
    """Return a started harness around the market maker."""
    harness = factory(AvellanedaStoikov, {**CONFIG, **overrides})
    harness.start()
    return harness


def seed_variance(strategy: AvellanedaStoikov, per_second: float) -> None:
    """Give the strategy's estimate exactly ``per_second`` ticks^2/s (one one-second sample)."""
    strategy.variance = MidVariance(strategy.config.vol_window_ns)
    strategy.variance.update(0.0, 0)
    strategy.variance.update(math.sqrt(per_second), SECOND)
    strategy.variance.restart()  # the next mid starts a new path


def set_position(harness: StrategyHarness[AvellanedaStoikov], position: int) -> None:
    """Set the harness's position of the strategy directly."""
    harness.context.positions[(VENUE, SYMBOL)] = position


def plan_of(harness: StrategyHarness[AvellanedaStoikov], bid: int, ask: int) -> QuotePlan:
    """Return the strategy's evaluation of a touch."""
    plan = harness.strategy.evaluate(bid, ask)
    assert plan is not None
    return plan


def by_side(harness: StrategyHarness[AvellanedaStoikov]) -> dict[OrderSide, list[int | None]]:
    """Return the prices of the intents submitted so far, by side."""
    sides: dict[OrderSide, list[int | None]] = {OrderSide.BUY: [], OrderSide.SELL: []}
    for intent in harness.intents:
        sides[intent.side].append(intent.price)
    return sides


def test_quotes_follow_the_model_with_a_still_mid(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    reservation, spread = model(mid=0.5, inventory=0, variance=0.0)
    plan = harness.strategy.plan
    assert plan is not None
    assert plan.spread == pytest.approx(spread)
    assert plan.reservation == pytest.approx(BASE + reservation * TICK)
    # 0.5 - 19.98 ticks rounds down to -20, 0.5 + 19.98 up to +21.
    assert (math.floor(reservation - spread / 2), math.ceil(reservation + spread / 2)) == (-20, 21)
    bid, ask = harness.intents
    assert (bid.side, bid.price, bid.quantity) == (OrderSide.BUY, BASE - 20 * TICK, QUANTITY)
    assert (ask.side, ask.price, ask.quantity) == (OrderSide.SELL, BASE + 21 * TICK, QUANTITY)
    for intent in (bid, ask):
        assert intent.order_type is OrderType.LIMIT
        assert intent.time_in_force is TimeInForce.POST_ONLY


def test_the_variance_is_measured_from_mid_changes(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    for step in range(20):  # the mid jumps 10 ticks every 100 ms: 100 / 0.1 = 1000 ticks^2/s
        harness.feed(quote(10 * (step % 2), step * 100 * MS))
    assert harness.strategy.variance.variance == pytest.approx(1_000.0)
    assert harness.strategy.variance.observed_ns == 19 * 100 * MS


def test_a_long_inventory_moves_both_quotes_down(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    seed_variance(harness.strategy, 1_000.0)
    harness.feed(quote(0, 2 * SECOND))  # mid 0.5 ticks above 60000.00, flat
    flat = plan_of(harness, BASE, BASE + TICK)
    [bid_id] = [i for i, order in harness.strategy.working.items() if order.side is OrderSide.BUY]
    harness.feed(filled(bid_id, QUANTITY, BASE, ts=2 * SECOND))  # q = +100 lots
    long = plan_of(harness, BASE, BASE + TICK)
    assert long.inventory == 100
    expected, _ = model(mid=0.5, inventory=100, variance=1_000.0)
    assert long.reservation == pytest.approx(BASE + expected * TICK)
    assert flat.reservation - long.reservation == pytest.approx(100 * GAMMA * 1_000 * TICK)
    assert long.spread == pytest.approx(flat.spread), "the spread does not depend on q"
    assert flat.bid is not None and flat.ask is not None
    assert long.bid is not None and long.ask is not None
    assert long.bid == flat.bid - 10 * TICK and long.ask == flat.ask - 10 * TICK
    # The filled bid is replaced at once at the lower price; the ask, 10 ticks off, is cancelled.
    assert harness.intents[-1].side is OrderSide.BUY
    assert harness.intents[-1].price == long.bid
    [ask_id] = [i for i, order in harness.strategy.working.items() if order.side is OrderSide.SELL]
    assert harness.cancels == [ask_id]


def test_a_short_inventory_moves_both_quotes_up(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    seed_variance(harness.strategy, 1_000.0)
    flat = plan_of(harness, BASE, BASE + TICK)
    set_position(harness, -QUANTITY)
    short = plan_of(harness, BASE, BASE + TICK)
    assert short.inventory == -100
    assert short.reservation - flat.reservation == pytest.approx(10 * TICK)
    assert (short.bid, short.ask) == (
        flat.bid + 10 * TICK if flat.bid is not None else None,
        flat.ask + 10 * TICK if flat.ask is not None else None,
    )


def test_the_spread_widens_with_volatility(strategy_harness: HarnessFactory) -> None:
    calm = harness_for(strategy_harness, gamma=0.01)
    wild = harness_for(strategy_harness, gamma=0.01)
    for step in range(30):
        calm.feed(quote(step % 2, step * 100 * MS))
        wild.feed(quote(20 * (step % 2), step * 100 * MS))
    calm_plan, wild_plan = calm.strategy.plan, wild.strategy.plan
    assert calm_plan is not None and wild_plan is not None
    assert wild_plan.variance == pytest.approx(400 * calm_plan.variance)
    assert wild_plan.spread > calm_plan.spread + 30
    _, expected = model(mid=0.5, inventory=0, variance=wild_plan.variance, gamma=0.01)
    assert wild_plan.spread == pytest.approx(expected)
    assert wild_plan.ask is not None and wild_plan.bid is not None
    assert calm_plan.ask is not None and calm_plan.bid is not None
    assert wild_plan.ask - wild_plan.bid > calm_plan.ask - calm_plan.bid + 30 * TICK


@pytest.mark.parametrize("position", [-2 * QUANTITY, 2 * QUANTITY])
def test_a_skewed_quote_never_crosses_the_touch(
    strategy_harness: HarnessFactory, position: int
) -> None:
    harness = harness_for(strategy_harness, gamma=0.01)
    seed_variance(harness.strategy, 1_000.0)  # 10 ticks of skew per lot
    set_position(harness, position)
    best_bid, best_ask = BASE, BASE + 10 * TICK
    plan = plan_of(harness, best_bid, best_ask)
    if position < 0:  # the model's bid is far above the ask: held one tick below it
        assert plan.bid == best_ask - TICK
        assert plan.ask is not None and plan.ask > best_ask
    else:  # the model's ask is far below the bid: held one tick above it
        assert plan.ask == best_bid + TICK
        assert plan.bid is not None and plan.bid < best_bid


def test_max_inventory_stops_the_side_that_would_grow_it(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    set_position(harness, 3 * QUANTITY)
    harness.feed(quote(0, 0))
    plan = harness.strategy.plan
    assert plan is not None and plan.bid is None and plan.bid_size == 0
    assert [intent.side for intent in harness.intents] == [OrderSide.SELL]
    set_position(harness, 2 * QUANTITY + 40 * LOT)
    assert plan_of(harness, BASE, BASE + TICK).bid_size == 60 * LOT
    set_position(harness, -3 * QUANTITY)
    plan = plan_of(harness, BASE, BASE + TICK)
    assert plan.ask is None and plan.bid_size == QUANTITY


def test_a_working_quote_beyond_the_room_left_is_cancelled(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    bid_id = harness.submitted[0].client_order_id
    set_position(harness, 2 * QUANTITY + 50 * LOT)  # filled elsewhere: only 50 lots of room
    harness.feed(quote(0, SECOND))
    assert harness.cancels == [bid_id]


def test_on_spot_the_ask_sells_only_what_is_held(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, allow_short=False)
    harness.feed(quote(0, 0))
    assert [intent.side for intent in harness.intents] == [OrderSide.BUY]
    set_position(harness, 30 * LOT)
    plan = plan_of(harness, BASE, BASE + TICK)
    assert plan.ask_size == 30 * LOT


def test_requotes_only_when_the_model_moves_enough(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    bid_id, ask_id = (submitted.client_order_id for submitted in harness.submitted)
    harness.feed(quote(3, SECOND))
    assert harness.cancels == []
    harness.feed(quote(6, 2 * SECOND))
    assert harness.cancels == [bid_id, ask_id]
    assert len(harness.intents) == 2, "nothing new until the old quotes are gone"
    harness.feed(canceled(bid_id, ts=2 * SECOND))
    assert by_side(harness)[OrderSide.BUY] == [BASE - 20 * TICK, BASE - 14 * TICK]
    harness.feed(canceled(ask_id, ts=2 * SECOND))
    assert by_side(harness)[OrderSide.SELL] == [BASE + 21 * TICK, BASE + 27 * TICK]


def test_the_timer_replaces_quotes_a_tick_off(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    harness.feed(quote(2, SECOND))
    assert harness.cancels == []
    assert REQUOTE_TIMER in harness.context.timers
    harness.advance(5 * SECOND)
    assert harness.cancels == [submitted.client_order_id for submitted in harness.submitted]


def test_backs_off_a_side_after_a_rejection(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    harness.feed(rejected(harness.submitted[0].client_order_id, ts=100 * MS))
    harness.feed(quote(0, 500 * MS))
    assert len(harness.intents) == 2
    harness.feed(quote(0, 1_200 * MS))
    assert [intent.side for intent in harness.intents] == [
        OrderSide.BUY,
        OrderSide.SELL,
        OrderSide.BUY,
    ]


def test_an_invalid_book_cancels_the_quotes_until_valid(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    for step in range(10):
        harness.feed(quote(10 * (step % 2), step * 100 * MS))
    variance = harness.strategy.variance.variance
    ids = list(harness.strategy.working)
    harness.feed(status(BookState.INVALID, ts=SECOND))
    assert harness.cancels == ids
    for client_order_id in ids:
        harness.feed(canceled(client_order_id, ts=SECOND))
    harness.feed(quote(0, 2 * SECOND))
    assert harness.strategy.working == {}
    submitted = len(harness.intents)
    harness.feed(status(BookState.VALID, ts=3 * SECOND))
    harness.feed(quote(500, 3 * SECOND))  # far from before the gap: not a volatility sample
    assert harness.strategy.variance.variance == variance
    assert len(harness.intents) == submitted + 2


def test_waits_for_the_warm_up_before_quoting(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, warmup_ns=SECOND)
    harness.feed(quote(0, 0))
    harness.feed(quote(1, SECOND // 2))
    assert harness.intents == []
    harness.feed(quote(0, SECOND))
    assert len(harness.intents) == 2


def test_stop_cancels_the_quotes_and_the_timer(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(quote(0, 0))
    harness.stop()
    assert harness.cancels == [submitted.client_order_id for submitted in harness.submitted]
    assert REQUOTE_TIMER not in harness.context.timers
    for client_order_id in harness.cancels:
        harness.feed(canceled(client_order_id, ts=SECOND))
    assert len(harness.intents) == 2


@pytest.mark.parametrize(
    "view",
    [
        StaticBook(),
        StaticBook([(BASE, 1)], []),
        StaticBook([], [(BASE, 1)]),
        StaticBook([(BASE, 1)], [(BASE, 1)]),
        StaticBook([(BASE + TICK, 1)], [(BASE, 1)]),
        StaticBook([(0, 1)], [(TICK, 1)]),
    ],
)
def test_books_without_a_trustworthy_mid_give_no_quote(
    strategy_harness: HarnessFactory, view: StaticBook
) -> None:
    harness = harness_for(strategy_harness)
    harness.strategy.on_book(BookDelta(VENUE, SYMBOL, (), (), 1, 1, SECOND, SECOND), view)
    assert harness.intents == []


def test_zero_sizes_do_not_raise(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    view = StaticBook([(BASE, 0)], [(BASE + TICK, 0)])
    harness.strategy.on_book(BookDelta(VENUE, SYMBOL, (), (), 1, 1, SECOND, SECOND), view)
    assert all(intent.price is not None and intent.price % TICK == 0 for intent in harness.intents)


def test_the_variance_estimate() -> None:
    estimate = MidVariance(window_ns=10 * SECOND)
    assert estimate.variance == 0.0
    estimate.update(100.0, 0)
    estimate.update(102.0, SECOND // 2)  # 4 / 0.5 = 8 per second
    assert estimate.variance == pytest.approx(8.0)
    estimate.update(110.0, SECOND // 2)  # same time: skipped, counted by the next one
    estimate.update(100.0, SECOND)  # 4 / 0.5 = 8 again
    assert estimate.variance == pytest.approx(8.0)
    estimate.update(130.0, 2 * SECOND)  # 900 / 1 = 900
    # The first second weighs 1 - exp(-0.1) before decaying by exp(-0.1), as does the second.
    old, new = -math.expm1(-0.1) * math.exp(-0.1), -math.expm1(-0.1)
    expected = (8.0 * old + 900.0 * new) / (old + new)
    assert estimate.variance == pytest.approx(expected)
    estimate.restart()
    estimate.update(1e6, 3 * SECOND)
    assert estimate.variance == pytest.approx(expected)
    estimate.update(float("nan"), 4 * SECOND)
    assert math.isfinite(estimate.variance)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gamma": 0.0}, "gamma must be positive and finite"),
        ({"kappa": float("inf")}, "kappa must be positive and finite"),
        ({"requote_ticks": 0}, "requote_ticks must be positive"),
        ({"horizon_ns": 0}, "horizon_ns must be positive"),
        ({"warmup_ns": -1}, "warmup_ns must not be negative"),
        ({"max_inventory": 1}, "max_inventory must be a positive multiple of lot (1000)"),
        ({"gamma": "high"}, "strategies.avellaneda_stoikov.gamma: Expected float, got str"),
    ],
)
def test_refuses_a_bad_configuration(
    strategy_harness: HarnessFactory, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrategyConfigError) as error:
        strategy_harness(AvellanedaStoikov, {**CONFIG, **overrides}, name="avellaneda_stoikov")
    assert message in str(error.value)


def test_defaults_and_integer_model_parameters() -> None:
    config = AvellanedaStoikov.Config(
        venue=VENUE, symbol=SYMBOL, tick=TICK, lot=LOT, quantity=QUANTITY, max_inventory=QUANTITY
    )
    assert (config.gamma, config.kappa, config.horizon_ns) == (1e-6, 0.05, SECOND)
    assert (config.requote_ticks, config.allow_short, config.warmup_ns) == (5, False, 5 * SECOND)
    from tradekernel_sdk import load_strategy_config

    loaded = load_strategy_config(
        AvellanedaStoikov, {**CONFIG, "gamma": 1, "kappa": 2}, "strategies.avellaneda_stoikov"
    )
    assert isinstance(loaded, AvellanedaStoikov.Config)
    assert (loaded.gamma, loaded.kappa) == (1.0, 2.0)
