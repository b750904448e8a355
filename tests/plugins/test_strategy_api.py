"""The strategy API: typed configuration, intents, event routing and the test harness."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tradekernel_sdk import (
    BookView,
    OrderIntent,
    Strategy,
    StrategyConfigError,
    hookimpl,
    load_strategy_config,
)
from tradekernel_sdk.orders import (
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.plugin import ApiVersionError, RegistrationError, RegistrationKind
from tradekernel_sdk.strategy import dispatch_event
from tradekernel_sdk.testing import HarnessFactory, InMemoryBook, InMemoryContext, StrategyHarness
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Quote,
    Trade,
)

SECOND = 1_000_000_000


class Imbalance(Strategy):
    """Join the best bid when bid size outweighs ask size at the top of the book."""

    class Config(Strategy.Config, frozen=True):
        venue: str
        symbol: str
        threshold_bps: int = 2000
        lots: int = 1
        sides: tuple[str, ...] = ("buy",)

    config: Config

    def on_start(self) -> None:
        self.order_id: str | None = None
        self.fills: list[OrderFilled] = []
        self.ticks: list[int] = []
        self.context.set_timer("heartbeat", SECOND)

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None or self.order_id is not None:
            return
        imbalance_bps = (bid[1] - ask[1]) * 10_000 // (bid[1] + ask[1])
        if imbalance_bps >= self.config.threshold_bps:
            self.order_id = self.context.submit(
                OrderIntent(
                    venue=self.config.venue,
                    symbol=self.config.symbol,
                    side=OrderSide.BUY,
                    order_type=OrderType.LIMIT,
                    quantity=self.config.lots,
                    price=bid[0],
                    tag="imbalance",
                )
            )

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)

    def on_timer(self, name: str, ts_ns: int) -> None:
        self.ticks.append(ts_ns)

    def on_stop(self) -> None:
        self.context.cancel_all()


def snapshot(bid_size: int, ask_size: int, ts: int = 1) -> BookSnapshot:
    return BookSnapshot("binance", "BTCUSDT", ((100, bid_size),), ((101, ask_size),), 1, ts, ts)


def delta(bids: tuple[tuple[int, int], ...], ts: int) -> BookDelta:
    return BookDelta("binance", "BTCUSDT", bids, (), 2, 2, ts, ts)


def fill(client_order_id: str, quantity: int, leaves: int, ts: int) -> OrderFilled:
    return OrderFilled(
        client_order_id, "v1", "binance", "BTCUSDT", ts, "f1", 100, quantity, leaves, 0,
        Liquidity.MAKER,
    )  # fmt: skip


CONFIG = {"venue": "binance", "symbol": "BTCUSDT"}


# Configuration


def test_config_is_converted_from_a_toml_table() -> None:
    config = load_strategy_config(Imbalance, {**CONFIG, "sides": ["buy", "sell"]}, "s.i")
    assert config == Imbalance.Config(
        venue="binance", symbol="BTCUSDT", threshold_bps=2000, lots=1, sides=("buy", "sell")
    )
    with pytest.raises(AttributeError):
        config.lots = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {**CONFIG, "threshold_bps": "5"},
            "strategies.imbalance.threshold_bps: Expected int, got str",
        ),
        ({"venue": "binance"}, "strategies.imbalance.symbol: required field missing"),
        ({**CONFIG, "treshold_bps": 5}, "strategies.imbalance.treshold_bps: unknown field"),
        (
            {**CONFIG, "sides": ["buy", 1]},
            "strategies.imbalance.sides[1]: Expected str, got int",
        ),
        ({**CONFIG, "lots": True}, "strategies.imbalance.lots: Expected int, got bool"),
        ([1, 2], "strategies.imbalance: Expected a table, got array"),
    ],
    ids=["wrong-type", "missing", "unknown", "list-item", "bool-is-not-int", "not-a-table"],
)
def test_config_errors_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(StrategyConfigError) as raised:
        load_strategy_config(Imbalance, raw, "strategies.imbalance")
    assert str(raised.value) == message


def test_strategy_refuses_another_strategys_config() -> None:
    with pytest.raises(
        TypeError, match=r"^Imbalance: config must be Imbalance\.Config, got Strategy\.Config$"
    ):
        Imbalance(InMemoryContext(), Strategy.Config())


# Intents


def test_intent_becomes_an_order_request_under_the_given_id() -> None:
    intent = OrderIntent(
        symbol="BTCUSDT", venue="binance", side=OrderSide.SELL, order_type=OrderType.LIMIT,
        quantity=3, price=101, time_in_force=TimeInForce.POST_ONLY, tag="exit",
    )  # fmt: skip
    request = intent.to_request("s-7", ts_submit=42)
    assert (request.client_order_id, request.venue, request.symbol) == ("s-7", "binance", "BTCUSDT")
    assert (request.side, request.order_type, request.quantity, request.price) == (
        OrderSide.SELL,
        OrderType.LIMIT,
        3,
        101,
    )
    assert (request.time_in_force, request.ts_submit) == (TimeInForce.POST_ONLY, 42)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"order_type": OrderType.LIMIT, "quantity": 0, "price": 1}, "quantity must be positive"),
        ({"order_type": OrderType.LIMIT, "quantity": 1}, "a limit order needs a positive price"),
        ({"order_type": OrderType.MARKET, "quantity": 1, "price": 5}, "carries no price"),
        (
            {
                "order_type": OrderType.MARKET,
                "quantity": 1,
                "time_in_force": TimeInForce.POST_ONLY,
            },
            "cannot be post-only",
        ),
    ],
    ids=["zero-quantity", "limit-without-price", "market-with-price", "market-post-only"],
)
def test_impossible_intent_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OrderIntent(symbol="BTCUSDT", venue="binance", side=OrderSide.BUY, **fields)


# Event routing


class Recorder(Strategy):
    """Record which callback each event reached."""

    def __init__(self) -> None:
        super().__init__(InMemoryContext(), Strategy.Config())
        self.calls: list[str] = []

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.calls.append("on_book")

    def on_book_status(self, status: BookStatus) -> None:
        self.calls.append("on_book_status")

    def on_quote(self, quote: Quote) -> None:
        self.calls.append("on_quote")

    def on_trade(self, trade: Trade) -> None:
        self.calls.append("on_trade")

    def on_bar(self, bar: Bar) -> None:
        self.calls.append("on_bar")

    def on_order_event(self, event: OrderEvent) -> None:
        self.calls.append("on_order_event")

    def on_fill(self, fill: OrderFilled) -> None:
        self.calls.append("on_fill")


@pytest.mark.parametrize(
    ("event", "calls"),
    [
        (snapshot(1, 1), ["on_book"]),
        (delta(((100, 0),), 2), ["on_book"]),
        (BookStatus("binance", "BTCUSDT", BookState.INVALID, "gap", 3, 4), ["on_book_status"]),
        (Quote("binance", "BTCUSDT", 100, 1, 101, 1, 1, 2, 3), ["on_quote"]),
        (Trade("binance", "BTCUSDT", 100, 1, AggressorSide.BUY, "t", 1, 2), ["on_trade"]),
        (Bar("binance", "BTCUSDT", SECOND, 1, 2, 1, 2, 5, 0), ["on_bar"]),
        (OrderAccepted("c", "v", "binance", "BTCUSDT", 1), ["on_order_event"]),
        (fill("c", 1, 0, 1), ["on_order_event", "on_fill"]),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, list) else "",
)
def test_each_event_reaches_its_callback(event: Any, calls: list[str]) -> None:
    recorder = Recorder()
    dispatch_event(recorder, event, InMemoryBook())
    assert recorder.calls == calls


def test_book_event_without_a_book_is_an_error() -> None:
    with pytest.raises(ValueError, match="BookSnapshot for BTCUSDT needs its book"):
        dispatch_event(Recorder(), snapshot(1, 1))


def test_base_strategy_callbacks_do_nothing() -> None:
    strategy = Strategy(InMemoryContext(), Strategy.Config())
    strategy.on_start()
    for event in (snapshot(1, 1), fill("c", 1, 0, 1), Bar("b", "s", 1, 1, 1, 1, 1, 1, 0)):
        dispatch_event(strategy, event, InMemoryBook())
    strategy.on_timer("t", 1)
    strategy.on_stop()


# The harness


def test_harness_collects_the_intents_a_strategy_submits(
    strategy_harness: HarnessFactory,
) -> None:
    harness = strategy_harness(Imbalance, {**CONFIG, "threshold_bps": 5000, "lots": 2})

    intents = harness.run(
        [
            snapshot(bid_size=10, ask_size=10, ts=1),  # balanced: nothing
            delta(((100, 40),), ts=2),  # 40 vs 10: 6000 bps
            delta(((100, 90),), ts=3),  # already working: nothing more
        ]
    )

    assert intents == [
        OrderIntent(
            symbol="BTCUSDT", venue="binance", side=OrderSide.BUY, order_type=OrderType.LIMIT,
            quantity=2, price=100, tag="imbalance",
        )
    ]  # fmt: skip
    assert [(s.client_order_id, s.ts_ns) for s in harness.submitted] == [("strategy-1", 2)]
    # on_stop cancelled what was still working.
    assert harness.cancels == ["strategy-1"]
    assert harness.context.book("binance", "BTCUSDT") is not None
    assert harness.context.book("binance", "BTCUSDT").bid_levels() == [(100, 90)]  # type: ignore[union-attr]


def test_harness_validates_the_config_like_the_kernel(strategy_harness: HarnessFactory) -> None:
    with pytest.raises(StrategyConfigError, match=r"^strategies\.imb\.lots: Expected int"):
        strategy_harness(Imbalance, {**CONFIG, "lots": "2"}, name="imb")


def test_fills_update_the_position_and_end_the_order(strategy_harness: HarnessFactory) -> None:
    harness = strategy_harness(Imbalance, CONFIG)
    harness.feed(snapshot(bid_size=90, ask_size=10, ts=1))
    (order_id,) = [s.client_order_id for s in harness.submitted]

    harness.feed(fill(order_id, quantity=1, leaves=0, ts=2))

    assert harness.context.position("binance", "BTCUSDT") == 1
    assert harness.context.working == {}
    assert [f.quantity for f in harness.strategy.fills] == [1]
    harness.stop()
    assert harness.cancels == []


def test_fill_for_an_order_never_submitted_is_an_error(strategy_harness: HarnessFactory) -> None:
    harness = strategy_harness(Imbalance, CONFIG)
    with pytest.raises(ValueError, match="not a working order"):
        harness.feed(fill("nobody", 1, 0, 1))


def test_cancel_events_end_orders_and_cancel_all_filters_by_symbol() -> None:
    context = InMemoryContext(name="ctx")
    buy = OrderIntent(
        symbol="BTCUSDT", venue="binance", side=OrderSide.BUY, order_type=OrderType.MARKET,
        quantity=1,
    )  # fmt: skip
    first = context.submit(buy)
    second = context.submit(msgspec.structs.replace(buy, symbol="ETHUSDT"))
    context.cancel_all("ETHUSDT")
    assert context.cancel_requests == [second]
    context.apply(OrderCanceled(second, "v", "binance", "ETHUSDT", 5))
    assert list(context.working) == [first]


def test_timers_fire_in_time_order_before_the_next_event(
    strategy_harness: HarnessFactory,
) -> None:
    harness: StrategyHarness[Imbalance] = strategy_harness(Imbalance, CONFIG, start_ns=0)
    harness.start()
    harness.context.set_timer("fast", SECOND // 2)

    harness.feed(snapshot(10, 10, ts=2 * SECOND + 1))

    half = SECOND // 2
    # "heartbeat" (set in on_start) every second, "fast" every half second.
    assert harness.strategy.ticks == [half, SECOND, SECOND, 3 * half, 2 * SECOND, 2 * SECOND]
    assert harness.context.clock() == 2 * SECOND + 1
    harness.context.cancel_timer("fast")
    harness.advance(3 * SECOND)
    assert harness.strategy.ticks[-1] == 3 * SECOND


def test_timer_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_ns must be positive"):
        InMemoryContext().set_timer("t", 0)


def test_harness_factory_stops_what_the_test_left_running() -> None:
    factory = HarnessFactory()
    harness = factory(Imbalance, CONFIG)
    harness.start()
    harness.feed(snapshot(90, 10))
    factory.stop_all()
    assert harness.stopped
    assert harness.cancels == ["strategy-1"]


# Plug-in registrations for authors


class _AuthorsPlugin:
    TRADEKERNEL_API = "1.0"

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register("imbalance", Imbalance)


def test_plugin_registrations_fixture_loads_like_the_kernel(plugin_registrations: Any) -> None:
    registered = plugin_registrations(_AuthorsPlugin())
    assert registered[RegistrationKind.STRATEGY] == {"imbalance": Imbalance}
    assert registered[RegistrationKind.VENUE] == {}


def test_plugin_registrations_fixture_reports_problems(plugin_registrations: Any) -> None:
    class Future(_AuthorsPlugin):
        TRADEKERNEL_API = "2.0"

    class Raising(_AuthorsPlugin):
        @hookimpl
        def register_strategies(self, register: Any) -> None:
            raise RuntimeError("boom")

    with pytest.raises(ApiVersionError, match="major versions must match"):
        plugin_registrations(Future())
    with pytest.raises(RegistrationError, match="register_strategies raised RuntimeError: boom"):
        plugin_registrations(Raising())


def test_register_kept_after_its_hook_returned_is_refused(plugin_registrations: Any) -> None:
    kept: list[Any] = []

    class Sneaky(_AuthorsPlugin):
        @hookimpl
        def register_strategies(self, register: Any) -> None:
            kept.append(register)

    plugin_registrations(Sneaky())
    with pytest.raises(RegistrationError, match="called after register_strategies returned"):
        kept[0]("late", Imbalance)


def test_opt_in_pytest_plugin_gives_authors_the_harness(tmp_path: Path) -> None:
    test_file = tmp_path / "test_author.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from tradekernel_sdk import Strategy
            from tradekernel_sdk.types import Trade, AggressorSide

            class Counter(Strategy):
                class Config(Strategy.Config, frozen=True):
                    step: int = 1

                def on_start(self):
                    self.count = 0

                def on_trade(self, trade):
                    self.count += self.config.step

            def test_counts_trades(strategy_harness):
                harness = strategy_harness(Counter, {"step": 2})
                trade = Trade("v", "s", 1, 1, AggressorSide.BUY, "t", 1, 1)
                assert harness.run([trade, trade]) == []
                assert harness.strategy.count == 4
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tradekernel_sdk.testing", "-q", str(test_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
