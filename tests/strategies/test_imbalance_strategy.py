"""The order-book imbalance strategy on hand-built books."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tradekernel_sdk import OrderIntent, StrategyConfigError, load_strategy_config
from tradekernel_sdk.orders import OrderSide, OrderStatus, OrderType, OrderUpdate, TimeInForce
from tradekernel_sdk.testing import HarnessFactory, InMemoryContext, StrategyHarness
from tradekernel_sdk.types import BookDelta, BookState
from tradekernel_strategies import Imbalance

from .support import (
    INSTRUMENT,
    LOT,
    QUANTITY,
    SECOND,
    SYMBOL,
    VENUE,
    StaticBook,
    book,
    cancel_refused,
    expired,
    filled,
    price,
    rejected,
    status,
)

CONFIG: dict[str, Any] = {
    **INSTRUMENT,
    "max_position": 3 * QUANTITY,
    "depth": 2,
    "threshold_bps": 5_000,
    "cooldown_ns": SECOND,
}

BID, ASK = "60000.00", "60000.01"


def bids_heavy(ts: int) -> Any:
    """Return a book whose top two levels hold 4 BTC of bids against 1 of asks (I = 0.6)."""
    return book([(BID, "3"), ("59999.99", "1")], [(ASK, "0.5"), ("60000.02", "0.5")], ts)


def asks_heavy(ts: int) -> Any:
    """Return a book with I = -0.6."""
    return book([(BID, "0.5"), ("59999.99", "0.5")], [(ASK, "3"), ("60000.02", "1")], ts)


def harness_for(factory: HarnessFactory, **overrides: Any) -> StrategyHarness[Imbalance]:
    """Return a started harness around an imbalance strategy."""
    harness = factory(Imbalance, {**CONFIG, **overrides})
    harness.start()
    return harness


def test_buys_at_the_best_ask_when_bids_outweigh_asks(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    assert harness.strategy.imbalance == Fraction(3, 5)
    [intent] = harness.intents
    assert intent.venue == VENUE and intent.symbol == SYMBOL
    assert intent.side is OrderSide.BUY
    assert intent.order_type is OrderType.LIMIT
    assert intent.time_in_force is TimeInForce.IOC
    assert intent.price == price(ASK)
    assert intent.quantity == QUANTITY


@pytest.mark.parametrize(
    ("threshold_bps", "trades"),
    [(3_333, True), (3_334, False)],
)
def test_the_threshold_is_compared_exactly(
    strategy_harness: HarnessFactory, threshold_bps: int, trades: bool
) -> None:
    harness = harness_for(strategy_harness, threshold_bps=threshold_bps)
    harness.feed(book([(BID, "2")], [(ASK, "1")], ts=SECOND))  # I = 1/3 exactly
    assert harness.strategy.imbalance == Fraction(1, 3)
    assert bool(harness.intents) is trades


def test_an_imbalance_at_the_threshold_is_not_beyond_it(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(book([(BID, "3")], [(ASK, "1")], ts=SECOND))  # I = 0.5 = threshold
    assert harness.intents == []
    assert harness.strategy.signal == 0


def test_only_the_top_depth_levels_count(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    deep_bids = [(BID, "1"), ("59999.99", "1"), ("59999.98", "100")]
    harness.feed(book(deep_bids, [(ASK, "1"), ("60000.02", "1")], ts=SECOND))
    assert harness.strategy.imbalance == 0
    assert harness.intents == []


def test_does_not_sell_what_it_does_not_hold(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(asks_heavy(ts=SECOND))
    assert harness.strategy.signal == -1
    assert harness.intents == []


def test_sells_what_it_holds_at_the_best_bid(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    buy = harness.submitted[0].client_order_id
    half = QUANTITY // 2
    harness.feed(filled(buy, half, price(ASK), ts=SECOND + 1, leaves=0))
    assert harness.strategy.position() == half
    harness.feed(asks_heavy(ts=3 * SECOND))
    sell = harness.intents[-1]
    assert (sell.side, sell.price, sell.quantity) == (OrderSide.SELL, price(BID), half)


def test_allow_short_sells_down_to_minus_max_position(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, allow_short=True, max_position=QUANTITY + QUANTITY // 2)
    sells: list[OrderIntent] = []
    for step in range(4):
        ts = (step + 1) * 2 * SECOND
        harness.feed(asks_heavy(ts=ts))
        if len(harness.intents) > len(sells):
            sells.append(harness.intents[-1])
            client_order_id = harness.submitted[-1].client_order_id
            harness.feed(filled(client_order_id, sells[-1].quantity, price(BID), ts=ts + 1))
    assert [sell.quantity for sell in sells] == [QUANTITY, QUANTITY // 2]
    assert all(sell.side is OrderSide.SELL for sell in sells)
    assert harness.strategy.position() == -(QUANTITY + QUANTITY // 2)


def test_buys_up_to_max_position_and_no_further(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, max_position=QUANTITY + 50 * LOT)
    for step in range(4):
        ts = (step + 1) * 2 * SECOND
        harness.feed(bids_heavy(ts=ts))
        if len(harness.submitted) > step:
            last = harness.submitted[-1]
            harness.feed(filled(last.client_order_id, last.intent.quantity, price(ASK), ts=ts + 1))
    assert [intent.quantity for intent in harness.intents] == [QUANTITY, 50 * LOT]
    assert harness.strategy.position() == QUANTITY + 50 * LOT


def test_waits_out_the_cooldown(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    harness.feed(expired(harness.submitted[0].client_order_id, ts=SECOND + 100_000_000))
    harness.feed(bids_heavy(ts=SECOND + SECOND // 2))
    assert len(harness.intents) == 1
    harness.feed(bids_heavy(ts=2 * SECOND))
    assert len(harness.intents) == 2
    assert harness.submitted[1].ts_ns - harness.submitted[0].ts_ns == SECOND


def test_does_not_stack_orders_while_one_is_working(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    harness.feed(bids_heavy(ts=5 * SECOND))
    assert len(harness.intents) == 1
    first = harness.submitted[0].client_order_id
    harness.feed(filled(first, QUANTITY // 4, price(ASK), ts=5 * SECOND, leaves=QUANTITY * 3 // 4))
    harness.feed(bids_heavy(ts=6 * SECOND))
    assert len(harness.intents) == 1, "a partial fill leaves the order working"
    harness.feed(expired(first, ts=6 * SECOND))
    harness.feed(bids_heavy(ts=7 * SECOND))
    assert len(harness.intents) == 2
    assert harness.intents[1].quantity == QUANTITY


def test_an_order_whose_answer_was_lost_is_cancelled_then_forgotten(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness, order_timeout_ns=10 * SECOND)
    harness.feed(bids_heavy(ts=SECOND))
    lost = harness.submitted[0].client_order_id
    harness.feed(bids_heavy(ts=10 * SECOND))
    assert harness.cancels == []
    harness.feed(bids_heavy(ts=11 * SECOND))
    assert harness.cancels == [lost]
    for attempt in range(3):
        harness.feed(cancel_refused(lost, ts=(12 + attempt) * SECOND))
        harness.feed(bids_heavy(ts=(12 + attempt) * SECOND))
    assert harness.cancels == [lost, lost, lost], "asked again after each of the first refusals"
    assert len(harness.intents) == 2, "forgotten after the third refusal: trading resumes"
    assert list(harness.strategy.working) == [harness.submitted[1].client_order_id]


def test_a_rejection_or_a_risk_denial_ends_the_working_order(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    harness.feed(rejected(harness.submitted[0].client_order_id, ts=SECOND))
    assert harness.strategy.rejects == 1
    harness.feed(bids_heavy(ts=2 * SECOND))
    assert len(harness.intents) == 2
    second = harness.submitted[1]
    denial = OrderUpdate(
        second.client_order_id,
        "strategy",
        VENUE,
        SYMBOL,
        OrderSide.BUY,
        OrderType.LIMIT,
        QUANTITY,
        second.intent.price,
        OrderStatus.DENIED,
        0,
        0,
        0,
        "max_position: over the limit",
        2 * SECOND,
    )
    harness.strategy.on_order_event(denial)  # type: ignore[arg-type]
    assert harness.strategy.working == {}
    harness.feed(bids_heavy(ts=3 * SECOND))
    assert len(harness.intents) == 3


class AnsweringContext(InMemoryContext):
    """A context whose venue answers an order before ``submit`` returns (an IOC that expires)."""

    strategy: Imbalance

    def submit(self, intent: OrderIntent) -> str:
        """Record the intent, then deliver its expiry at once."""
        client_order_id = super().submit(intent)
        event = expired(client_order_id, ts=self.now_ns)
        self.apply(event)
        self.strategy.on_order_event(event)
        return client_order_id


def test_an_answer_that_arrives_during_submit_is_not_lost() -> None:
    context = AnsweringContext()
    config = load_strategy_config(Imbalance, CONFIG, "strategies.imbalance")
    strategy = context.strategy = Imbalance(context, config)
    strategy.on_start()
    update = bids_heavy(ts=SECOND)
    strategy.on_book(update, StaticBook(update.bids, update.asks))
    assert len(context.submitted) == 1
    assert strategy.working == {}, "the expiry ended the order"
    later = bids_heavy(ts=2 * SECOND)
    strategy.on_book(later, StaticBook(later.bids, later.asks))
    assert len(context.submitted) == 2


def test_market_execution_sends_market_orders(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness, execution="market")
    harness.feed(bids_heavy(ts=SECOND))
    [intent] = harness.intents
    assert (intent.order_type, intent.price, intent.time_in_force) == (
        OrderType.MARKET,
        None,
        TimeInForce.IOC,
    )


def test_an_invalid_book_cancels_and_pauses_until_valid(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    working = harness.submitted[0].client_order_id
    harness.feed(status(BookState.INVALID, ts=2 * SECOND))
    assert harness.cancels == [working]
    harness.feed(expired(working, ts=2 * SECOND))
    harness.feed(bids_heavy(ts=5 * SECOND))
    assert len(harness.intents) == 1, "no trading while the book is invalid"
    harness.feed(status(BookState.VALID, ts=6 * SECOND))
    harness.feed(bids_heavy(ts=6 * SECOND))
    assert len(harness.intents) == 2


def test_stop_cancels_the_working_order_and_sends_nothing_after(
    strategy_harness: HarnessFactory,
) -> None:
    harness = harness_for(strategy_harness)
    harness.feed(bids_heavy(ts=SECOND))
    harness.stop()
    working = harness.submitted[0].client_order_id
    assert harness.cancels == [working]
    harness.feed(expired(working, ts=2 * SECOND))
    assert harness.strategy.working == {}
    harness.strategy.on_book(bids_heavy(ts=9 * SECOND), StaticBook([(1, 10)], [(2, 1)]))
    assert len(harness.intents) == 1


@pytest.mark.parametrize(
    "view",
    [
        StaticBook(),
        StaticBook([(price(BID), 1)], []),
        StaticBook([], [(price(ASK), 1)]),
        StaticBook([(price(BID), 0)], [(price(ASK), 0)]),
        StaticBook([(price(BID), 5)], [(price(ASK), 0)]),
        StaticBook([(price(BID), -5)], [(price(ASK), 1)]),
        StaticBook([(0, 5)], [(0, 1)]),
    ],
)
def test_odd_books_give_no_order_and_no_error(
    strategy_harness: HarnessFactory, view: StaticBook
) -> None:
    harness = harness_for(strategy_harness)
    update = BookDelta(VENUE, SYMBOL, (), (), 1, 1, SECOND, SECOND)
    harness.strategy.on_book(update, view)
    assert harness.intents == []


def test_ignores_other_instruments(strategy_harness: HarnessFactory) -> None:
    harness = harness_for(strategy_harness)
    other = bids_heavy(ts=SECOND)
    harness.strategy.on_book(
        BookDelta(VENUE, "ETHUSDT", other.bids, other.asks, 1, 1, SECOND, SECOND),
        StaticBook(other.bids, other.asks),
    )
    assert harness.intents == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity": 1_500}, "quantity must be a positive multiple of lot (1000), got 1500"),
        ({"quantity": 0}, "quantity must be a positive multiple of lot"),
        ({"max_position": QUANTITY + 1}, "max_position must be a positive multiple of lot"),
        ({"tick": 0}, "tick must be positive"),
        ({"depth": 0}, "depth must be at least 1"),
        ({"threshold_bps": 10_000}, "threshold_bps must be in [0, 10000)"),
        ({"cooldown_ns": -1}, "cooldown_ns must not be negative"),
        ({"order_timeout_ns": 0}, "order_timeout_ns must be positive"),
        ({"execution": "limit"}, "strategies.imbalance.execution: Invalid enum value 'limit'"),
        ({"treshold_bps": 1}, "strategies.imbalance.treshold_bps: unknown field"),
    ],
)
def test_refuses_a_bad_configuration(
    strategy_harness: HarnessFactory, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(StrategyConfigError) as error:
        strategy_harness(Imbalance, {**CONFIG, **overrides}, name="imbalance")
    assert message in str(error.value)


def test_defaults() -> None:
    config = Imbalance.Config(venue=VENUE, symbol=SYMBOL, tick=1, lot=1, quantity=1, max_position=1)
    assert (config.depth, config.threshold_bps, config.cooldown_ns) == (5, 3_000, SECOND)
    assert (config.allow_short, config.execution) == (False, "ioc")
