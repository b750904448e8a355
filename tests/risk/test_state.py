"""Trading states, the kill switch on loss limits, and the events the engine publishes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kernel.bus import Bus
from kernel.risk import (
    RISK_EVENTS_TOPIC,
    DenialReason,
    OrderDenied,
    RiskConfig,
    RiskEngine,
    RiskEvent,
    TradingState,
    TradingStateChanged,
)
from tradekernel_sdk.orders import CancelRequest

from .support import BUY, ETH, SELL, START_NS, Desk, money


def test_engine_starts_active() -> None:
    desk = Desk()
    assert desk.engine.state is TradingState.ACTIVE
    assert desk.check(BUY, "1", "100.00").approved


def test_order_when_halted_is_denied() -> None:
    desk = Desk()
    desk.engine.halt("operator: exchange incident")
    for side in (BUY, SELL):
        decision = desk.check(side, "1", "100.00")
        assert decision.reason is DenialReason.TRADING_HALTED
        assert decision.detail == "trading is halted: operator: exchange incident"
    assert desk.engine.denials[DenialReason.TRADING_HALTED] == 2


def test_cancel_is_allowed_in_every_state() -> None:
    desk = Desk()
    cancel = CancelRequest("o1", "binance", "BTCUSDT")
    for change in (desk.engine.reduce, desk.engine.halt):
        change("test")
        assert desk.engine.check_cancel(cancel).approved
    assert desk.engine.cancels == 2


def test_resume_returns_to_active_trading() -> None:
    desk = Desk()
    desk.engine.halt("test")
    desk.engine.resume()
    assert desk.engine.state is TradingState.ACTIVE
    assert desk.engine.state_reason == "resumed by operator"
    assert desk.check(BUY, "1", "100.00").approved


# -- REDUCING -------------------------------------------------------------------


def test_reducing_allows_orders_that_reduce_a_long_position_down_to_flat() -> None:
    desk = Desk()
    desk.hold("1")
    desk.engine.reduce("daily target reached")
    assert desk.check(SELL, "0.4", "100.00").approved
    assert desk.check(SELL, "1", "100.00").approved
    assert desk.check(SELL, "1", market=True).approved


def test_reducing_denies_an_order_that_would_flip_the_position() -> None:
    desk = Desk()
    desk.hold("1")
    desk.engine.reduce("test")
    decision = desk.check(SELL, "1.00001", "100.00")
    assert decision.reason is DenialReason.TRADING_REDUCING
    assert "would not reduce position 1 without flipping it" in decision.detail


def test_reducing_denies_an_order_that_would_grow_the_position() -> None:
    desk = Desk()
    desk.hold("1")
    desk.engine.reduce("test")
    assert desk.check(BUY, "0.00001", "100.00").reason is DenialReason.TRADING_REDUCING


def test_reducing_counts_working_orders_on_the_same_side() -> None:
    desk = Desk()
    desk.hold("1")
    desk.rest(SELL, "0.6", "101.00")
    desk.engine.reduce("test")
    assert desk.check(SELL, "0.4", "101.00").approved
    decision = desk.check(SELL, "0.40001", "101.00")
    assert decision.reason is DenialReason.TRADING_REDUCING
    assert "with 0.6 working on its side" in decision.detail


def test_reducing_allows_buys_that_reduce_a_short_position() -> None:
    desk = Desk()
    desk.hold("-0.5")
    desk.engine.reduce("test")
    assert desk.check(BUY, "0.5", "100.00").approved
    assert desk.check(BUY, "0.50001", "100.00").reason is DenialReason.TRADING_REDUCING
    assert desk.check(SELL, "0.1", "100.00").reason is DenialReason.TRADING_REDUCING


def test_reducing_denies_every_order_when_flat() -> None:
    desk = Desk()
    desk.engine.reduce("test")
    assert desk.check(BUY, "1", "100.00").reason is DenialReason.TRADING_REDUCING
    assert desk.check(SELL, "1", "100.00").reason is DenialReason.TRADING_REDUCING


def test_reducing_is_judged_per_instrument() -> None:
    desk = Desk()
    desk.hold("1")
    desk.engine.reduce("test")
    assert desk.check(SELL, "1", "50.00", ETH).reason is DenialReason.TRADING_REDUCING


# -- kill switch ----------------------------------------------------------------


def test_daily_loss_at_the_limit_keeps_trading_and_past_it_halts_once() -> None:
    desk = Desk(RiskConfig(max_daily_loss=Decimal("5000")))
    desk.engine.on_pnl(money("-5000"), money("100000"))
    assert desk.halts == []
    desk.engine.on_pnl(money("-5000.00000001"), money("100000"))
    assert desk.engine.state is TradingState.HALTED
    assert desk.halts == ["daily loss 5000.00000001 is above max_daily_loss 5000"]
    desk.engine.on_pnl(money("-7000"), money("100000"))
    desk.engine.evaluate()
    assert len(desk.halts) == 1
    assert desk.check(SELL, "1", "100.00").reason is DenialReason.TRADING_HALTED


def test_drawdown_from_the_peak_seen_by_on_pnl_halts_once() -> None:
    desk = Desk(RiskConfig(max_drawdown=Decimal("2000")))
    for equity in ("10000", "12000", "10000"):
        desk.engine.on_pnl(0, money(equity))
    assert desk.engine.state is TradingState.ACTIVE
    desk.engine.on_pnl(0, money("9999.99"))
    assert desk.halts == ["drawdown 2000.01 from peak 12000 is above max_drawdown 2000"]
    desk.engine.on_pnl(0, money("5000"))
    assert len(desk.halts) == 1


def test_drawdown_in_bps_of_the_context_peak_halts_on_evaluate() -> None:
    desk = Desk(RiskConfig(max_drawdown_bps=500))
    desk.context.equity_peak_value = money("10000")
    desk.context.equity_value = money("9500")
    desk.engine.evaluate()
    assert desk.halts == []
    desk.context.equity_value = money("9499.99")
    desk.engine.evaluate()
    assert desk.engine.state is TradingState.HALTED
    assert desk.halts == [
        "drawdown 500.01 from peak 10000 is 500.0 bps, above max_drawdown_bps 500"
    ]


def test_daily_loss_read_from_the_context_on_evaluate() -> None:
    desk = Desk(RiskConfig(max_daily_loss=Decimal("100")))
    desk.context.realised_pnl_today_value = money("-100.5")
    desk.engine.evaluate()
    assert desk.halts == ["daily loss 100.5 is above max_daily_loss 100"]


def test_loss_breach_while_reducing_halts() -> None:
    desk = Desk(RiskConfig(max_daily_loss=Decimal("1")))
    desk.engine.reduce("test")
    desk.engine.on_pnl(money("-2"), 0)
    assert desk.engine.state is TradingState.HALTED
    assert len(desk.halts) == 1


def test_operator_halt_calls_the_kill_switch_once() -> None:
    desk = Desk()
    desk.engine.halt("operator")
    desk.engine.halt("operator again")
    assert desk.halts == ["operator"]
    assert desk.engine.state_reason == "operator"


def test_reduce_and_resume_do_not_call_the_kill_switch() -> None:
    desk = Desk()
    desk.engine.reduce("test")
    desk.engine.resume()
    assert desk.halts == []


def test_kill_switch_failure_propagates_after_the_engine_has_halted() -> None:
    desk = Desk()

    def failing(reason: str) -> None:
        raise RuntimeError("cancel-all failed")

    engine = RiskEngine(RiskConfig(), desk.context, clock=desk.clock, on_halt=failing)
    with pytest.raises(RuntimeError, match="cancel-all failed"):
        engine.halt("test")
    assert engine.state is TradingState.HALTED


# -- events and counters -----------------------------------------------------------


def subscribed_desk(config: RiskConfig | None = None) -> tuple[Desk, list[RiskEvent]]:
    bus = Bus()
    events: list[RiskEvent] = []
    bus.subscribe(RISK_EVENTS_TOPIC, events.append)
    return Desk(config, bus=bus), events


def test_every_state_change_is_published() -> None:
    desk, events = subscribed_desk()
    desk.engine.reduce("risk desk")
    desk.engine.reduce("again")  # no change, no event
    desk.engine.halt("operator")
    desk.clock.advance(5)
    desk.engine.resume("all clear")
    assert events == [
        TradingStateChanged(TradingState.ACTIVE, TradingState.REDUCING, "risk desk", START_NS),
        TradingStateChanged(TradingState.REDUCING, TradingState.HALTED, "operator", START_NS),
        TradingStateChanged(TradingState.HALTED, TradingState.ACTIVE, "all clear", START_NS + 5),
    ]


def test_every_denial_is_published_and_counted() -> None:
    desk, events = subscribed_desk()
    request = desk.order(BUY, "1", "50.03", ETH)
    assert not desk.engine.check(request).approved
    assert desk.check(BUY, "1", "100.00").approved
    assert events == [
        OrderDenied(
            request.client_order_id,
            "binance",
            "ETHUSDT",
            DenialReason.PRICE_NOT_ON_TICK,
            "price 50.03 is not on tick 0.05 (nearest 50 or 50.05)",
            START_NS,
        )
    ]
    assert desk.engine.denials[DenialReason.PRICE_NOT_ON_TICK] == 1
    assert desk.engine.approvals == 1


def test_kill_switch_publishes_the_halt_with_its_reason() -> None:
    desk, events = subscribed_desk(RiskConfig(max_daily_loss=Decimal("10")))
    desk.engine.on_pnl(money("-11"), 0)
    assert events == [
        TradingStateChanged(
            TradingState.ACTIVE,
            TradingState.HALTED,
            "daily loss 11 is above max_daily_loss 10",
            START_NS,
        )
    ]
