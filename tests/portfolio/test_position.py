"""Positions realise PnL exactly, first in first out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kernel.portfolio import MONEY_PRECISION, Portfolio, Position, to_money
from tradekernel_sdk.orders import OrderSide
from tradekernel_sdk.types import Instrument

BTC = Instrument("binance", "BTCUSDT", 2, 5, tick=1, lot=1)
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def test_round_trip_realises_the_price_difference() -> None:
    position = Position(BTC)
    position.apply_fill(BUY, 100_000, 6_000_000)  # 1 BTC at 60,000.00
    realised = position.apply_fill(SELL, 100_000, 6_010_050)  # at 60,100.50
    assert realised == 10_050 * 100_000
    assert position.quantity == 0
    assert not position.lots


def test_closing_matches_the_oldest_lot_first() -> None:
    position = Position(BTC)
    position.apply_fill(BUY, 2, 100)
    position.apply_fill(BUY, 2, 200)
    assert position.apply_fill(SELL, 3, 150) == (150 - 100) * 2 + (150 - 200) * 1
    assert list(position.lots) == [(1, 200)]


def test_a_fill_through_zero_flips_the_position() -> None:
    position = Position(BTC)
    position.apply_fill(BUY, 1, 100)
    assert position.apply_fill(SELL, 3, 110) == 10
    assert position.quantity == -2
    assert list(position.lots) == [(-2, 110)]
    assert position.apply_fill(BUY, 2, 100) == 20  # short covered lower
    assert position.quantity == 0


def test_unrealised_and_notional_at_a_mark() -> None:
    position = Position(BTC)
    position.apply_fill(SELL, 4, 100)
    assert position.unrealised(90) == 40
    assert position.notional(90) == 360


fills = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 50), st.integers(1, 1000)),
    max_size=40,
)


@given(fills, st.integers(1, 1000))
def test_realised_plus_unrealised_equals_mark_to_market_equity(
    trades: list[tuple[OrderSide, int, int]], mark: int
) -> None:
    position = Position(BTC)
    cash = 0
    for side, quantity, price in trades:
        position.apply_fill(side, quantity, price)
        cash += -quantity * price if side is BUY else quantity * price
    assert position.realised + position.unrealised(mark) == cash + position.quantity * mark
    assert sum(size for size, _ in position.lots) == position.quantity


def test_portfolio_totals_scale_each_instrument_exactly() -> None:
    eth = Instrument("binance", "ETHUSDT", 8, 8)
    portfolio = Portfolio()
    portfolio.position(BTC).apply_fill(BUY, 1, 100, fee=5)
    portfolio.position(eth).apply_fill(SELL, 1, 10**8)
    snapshot = portfolio.snapshot({("binance", "BTCUSDT"): 101, ("binance", "ETHUSDT"): 10**8})
    assert snapshot.unrealised == to_money(1, 7)
    assert snapshot.fees == to_money(5, 8)
    assert snapshot.gross_exposure == to_money(101, 7) + to_money(10**8, 16)
    assert MONEY_PRECISION >= 16
    assert portfolio.quantity("binance", "ETHUSDT") == -1
