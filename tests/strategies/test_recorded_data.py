"""Each strategy on real recorded data: the bundled Binance spot BTCUSDT slice.

The kernel's own feed parses and verifies the recording, the strategy gets
every book update with the feed's live book, and the kernel's paper venue
answers its orders (see :class:`~.support.Replay`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise
from typing import Any, cast

import pytest

from kernel.bus import topics
from tradekernel_sdk.orders import OrderSide, OrderType, TimeInForce
from tradekernel_sdk.testing import HarnessFactory
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState
from tradekernel_strategies import AvellanedaStoikov, Imbalance, Momentum
from tradekernel_strategies.avellaneda_stoikov import QuotePlan

from .support import INSTRUMENT, LOT, QUANTITY, SECOND, SYMBOL, TICK, VENUE, Replay, Submission

MAX = 3 * QUANTITY


def on_the_grid(submission: Submission) -> bool:
    """Return whether the intent's price is on the tick and its size on the lot."""
    intent = submission.submitted.intent
    return (
        intent.price is not None
        and intent.price % TICK == 0
        and intent.quantity > 0
        and intent.quantity % LOT == 0
    )


def check_taker(replay: Replay, cooldown_ns: int) -> None:
    """Check what the two taking strategies share: grid, limits, cooldown, one order at a time."""
    submissions = replay.submissions
    assert submissions, "the strategy never traded"
    assert {s.submitted.intent.side for s in submissions} == {OrderSide.BUY, OrderSide.SELL}
    for submission in submissions:
        intent = submission.submitted.intent
        assert on_the_grid(submission)
        assert intent.order_type is OrderType.LIMIT
        assert intent.time_in_force is TimeInForce.IOC
        assert intent.quantity <= QUANTITY
        assert submission.working == [intent.side], "orders were stacked"
        if intent.side is OrderSide.BUY:
            assert intent.price == submission.best_ask
            assert submission.position + intent.quantity <= MAX
        else:
            assert intent.price == submission.best_bid
            assert intent.quantity <= submission.position, "sold what it did not hold"
    for before, after in pairwise(submissions):
        assert after.submitted.ts_ns - before.submitted.ts_ns >= cooldown_ns
    assert replay.fills(), "nothing filled"
    assert all(0 <= position <= MAX for position in replay.positions)
    assert replay.venue.rejects == 0
    assert replay.harness.context.working == {}


def test_imbalance_trades_only_with_the_signal(strategy_harness: HarnessFactory) -> None:
    config = {
        **INSTRUMENT,
        "max_position": MAX,
        "depth": 5,
        "threshold_bps": 3_000,
        "cooldown_ns": SECOND,
    }
    replay = Replay(strategy_harness(Imbalance, config), probe=lambda s: s.imbalance).run()
    assert replay.book_updates > 1_000
    check_taker(replay, cooldown_ns=SECOND)
    assert len(replay.submissions) >= 20
    threshold = Fraction(3, 10)
    for submission in replay.submissions:
        bids = sum(size for _, size in submission.bids[:5])
        asks = sum(size for _, size in submission.asks[:5])
        imbalance = Fraction(bids - asks, bids + asks)
        assert submission.probe == imbalance
        if submission.submitted.intent.side is OrderSide.BUY:
            assert imbalance > threshold
        else:
            assert imbalance < -threshold


def test_momentum_trades_the_crosses_of_its_averages(strategy_harness: HarnessFactory) -> None:
    config = {
        **INSTRUMENT,
        "max_position": MAX,
        "fast_ns": SECOND,
        "slow_ns": 5 * SECOND,
        "warmup_ns": 5 * SECOND,
        "cooldown_ns": SECOND,
    }
    harness = strategy_harness(Momentum, config)
    replay = Replay(harness, probe=lambda s: (s.fast, s.slow, s.signal))
    # The averages recomputed beside the strategy, from the same books.
    mids: list[tuple[int, float]] = []

    def record_mid(update: BookDelta | BookSnapshot) -> None:
        live = replay.feed.book(SYMBOL)
        assert live is not None
        bid, ask = live.best_bid(), live.best_ask()
        assert bid is not None and ask is not None
        mids.append((update.ts_recv, (bid[0] + ask[0]) / 2))

    replay.bus.subscribe(topics.snapshot(VENUE, SYMBOL), record_mid)
    replay.bus.subscribe(topics.book(VENUE, SYMBOL), record_mid)
    replay.run()

    check_taker(replay, cooldown_ns=SECOND)
    first_ns = mids[0][0]
    for submission in replay.submissions:
        fast, slow, signal = cast(tuple[float, float, int], submission.probe)
        assert submission.submitted.ts_ns - first_ns >= 5 * SECOND, "traded in the warm-up"
        if submission.submitted.intent.side is OrderSide.BUY:
            assert signal == 1 and fast > slow
        else:
            assert signal == -1 and fast < slow
    fast = slow = mids[0][1]
    last_ns = first_ns
    for ts, mid in mids[1:]:
        if ts > last_ns:
            fast += (mid - fast) * (1 - math.exp(-(ts - last_ns) / SECOND))
            slow += (mid - slow) * (1 - math.exp(-(ts - last_ns) / (5 * SECOND)))
            last_ns = ts
    assert harness.strategy.fast == pytest.approx(fast, rel=1e-12)
    assert harness.strategy.slow == pytest.approx(slow, rel=1e-12)


AS_CONFIG: dict[str, Any] = {**INSTRUMENT, "max_inventory": MAX, "allow_short": True}


def test_avellaneda_stoikov_quotes_around_the_mid(strategy_harness: HarnessFactory) -> None:
    harness = strategy_harness(AvellanedaStoikov, AS_CONFIG)
    replay = Replay(harness, probe=lambda s: s.plan).run()
    config = harness.strategy.config
    submissions = replay.submissions
    assert len(submissions) >= 20
    first_ns = replay.statuses[0].ts_recv
    skewed = 0
    for submission in submissions:
        intent = submission.submitted.intent
        plan = submission.probe
        assert isinstance(plan, QuotePlan)
        assert on_the_grid(submission)
        assert intent.order_type is OrderType.LIMIT
        assert intent.time_in_force is TimeInForce.POST_ONLY
        assert submission.submitted.ts_ns - first_ns >= config.warmup_ns
        assert submission.working.count(intent.side) == 1, "two quotes on one side"
        assert intent.price is not None
        # Quotes bracket the mid, except where the inventory skew moves the reservation
        # price far enough: a bid above the mid only when short, an ask below it only
        # when long (in books several ticks wide). They never cross the touch.
        mid2 = submission.best_bid + submission.best_ask
        if intent.side is OrderSide.BUY:
            assert intent.price == plan.bid
            assert intent.price < submission.best_ask
            assert 2 * intent.price < mid2 or submission.position < 0
            assert intent.price < plan.reservation
            assert submission.position + intent.quantity <= MAX
        else:
            assert intent.price == plan.ask
            assert intent.price > submission.best_bid
            assert 2 * intent.price > mid2 or submission.position > 0
            assert intent.price > plan.reservation
            assert submission.position - intent.quantity >= -MAX
        if submission.position == 0:
            assert plan.bid is not None and plan.ask is not None
            assert 2 * plan.bid < mid2 < 2 * plan.ask
        # The model as the paper writes it, in ticks, lots and seconds.
        risk = config.gamma * plan.variance * config.horizon_ns / SECOND
        assert plan.spread == pytest.approx(
            risk + 2 / config.gamma * math.log(1 + config.gamma / config.kappa)
        )
        assert plan.inventory == submission.position / LOT
        assert plan.reservation == pytest.approx(plan.mid - plan.inventory * risk * TICK, rel=1e-12)
        if submission.position:
            skewed += 1
            assert (plan.reservation < plan.mid) is (submission.position > 0)
    assert skewed > 0, "the inventory never moved"
    assert replay.crossed_quotes == 0
    assert replay.venue.rejects == 0
    fills = replay.fills()
    assert {replay.side_of(fill.client_order_id) for fill in fills} == {
        OrderSide.BUY,
        OrderSide.SELL,
    }
    assert all(abs(position) <= MAX for position in replay.positions)
    assert replay.harness.context.working == {}, "quotes were left working after the stop"


def test_avellaneda_stoikov_stops_at_a_gap_in_the_data(strategy_harness: HarnessFactory) -> None:
    harness = strategy_harness(AvellanedaStoikov, AS_CONFIG)
    replay = Replay(harness, drop_diff=400).run()
    states = [status.state for status in replay.statuses]
    assert states == [BookState.VALID, BookState.INVALID], "dropping a diff breaks the chain"
    gap_ns = replay.statuses[1].ts_recv
    before = [s for s in replay.submissions if s.submitted.ts_ns <= gap_ns]
    after = [s for s in replay.submissions if s.submitted.ts_ns > gap_ns]
    assert before, "it quoted before the gap"
    assert after == [], "it quoted on a book known to be wrong"
    working = replay.working_at_status[1]
    assert working, "quotes were working when the book broke"
    assert working <= set(harness.cancels)
    assert harness.strategy.book_valid is False
    assert harness.strategy.working == {}
