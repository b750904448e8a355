"""Each pre-trade check: approved at its limit, denied just past it, with its code and detail."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

import pytest

from kernel.risk import (
    APPROVED,
    DenialReason,
    InstrumentLimits,
    RateLimit,
    RiskConfig,
    RiskDecision,
    RiskEngine,
    Rounding,
    StaticRiskContext,
    notional,
    round_to_lot,
    round_to_tick,
)
from kernel.risk.context import RiskContext
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType
from tradekernel_sdk.types import BookState, Instrument

from .support import BTC, BUY, ETH, SELL, SOL, Desk, book, money


def limits(
    *,
    max_position: str | None = None,
    min_order_notional: str | None = None,
    max_order_notional: str | None = None,
    max_open_orders: int | None = None,
    price_band_bps: int | None = None,
) -> RiskConfig:
    """Return a config with these default limits (decimals written as strings)."""

    def decimal(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return RiskConfig(
        defaults=InstrumentLimits(
            max_position=decimal(max_position),
            min_order_notional=decimal(min_order_notional),
            max_order_notional=decimal(max_order_notional),
            max_open_orders=max_open_orders,
            price_band_bps=price_band_bps,
        )
    )


def assert_denied(decision: RiskDecision, reason: DenialReason, *fragments: str) -> None:
    assert not decision.approved
    assert decision.reason is reason, decision
    for fragment in fragments:
        assert fragment in decision.detail, decision.detail


# -- instrument, fields, book ---------------------------------------------------


def test_order_on_an_unknown_instrument_is_denied() -> None:
    desk = Desk()
    request = desk.order(BUY, "1", "100.00")
    decision = desk.engine.check(
        OrderRequest(
            request.client_order_id, "binance", "DOGEUSDT", BUY, OrderType.LIMIT, 1, price=1
        )
    )
    assert_denied(decision, DenialReason.INSTRUMENT_UNKNOWN, "binance.DOGEUSDT")


@pytest.mark.parametrize(
    ("quantity", "price", "market", "fragment"),
    [
        ("0", "100.00", False, "quantity 0 must be positive"),
        ("-1", "100.00", False, "quantity -1 must be positive"),
        ("1", None, False, "a limit order needs a price"),
        ("1", "0", False, "price 0 must be positive"),
        ("1", "100.00", True, "a market order carries no price"),
    ],
)
def test_order_with_inconsistent_fields_is_denied(
    quantity: str, price: str | None, market: bool, fragment: str
) -> None:
    desk = Desk()
    assert_denied(
        desk.check(BUY, quantity, price, market=market), DenialReason.INVALID_ORDER, fragment
    )


def test_plain_limit_and_market_orders_are_approved_without_limits() -> None:
    desk = Desk()
    assert desk.check(BUY, "1", "100.00") is APPROVED
    assert desk.check(SELL, "1", market=True) is APPROVED
    assert desk.engine.approvals == 2
    assert sum(desk.engine.denials.values()) == 0


@pytest.mark.parametrize("state", [BookState.SYNCING, BookState.INVALID])
def test_order_on_a_book_that_is_not_valid_is_denied(state: BookState) -> None:
    desk = Desk()
    desk.context.set_book_state("binance", "BTCUSDT", state)
    assert_denied(
        desk.check(BUY, "1", "100.00"),
        DenialReason.BOOK_INVALID,
        f"book of binance.BTCUSDT is {state.value}",
        "no trading on an invalid book",
    )


def test_order_without_a_book_is_denied() -> None:
    desk = Desk()
    desk.context.books["binance"].pop("BTCUSDT")
    assert_denied(desk.check(BUY, "1", "100.00"), DenialReason.BOOK_INVALID, "no book")


# -- tick and lot ---------------------------------------------------------------


def test_price_on_tick_is_approved_and_off_tick_is_denied_not_rounded() -> None:
    desk = Desk()
    assert desk.check(BUY, "0.01", "50.05", ETH).approved
    assert_denied(
        desk.check(BUY, "0.01", "50.03", ETH),
        DenialReason.PRICE_NOT_ON_TICK,
        "price 50.03 is not on tick 0.05 (nearest 50 or 50.05)",
    )


def test_quantity_on_lot_is_approved_and_off_lot_is_denied() -> None:
    desk = Desk()
    assert desk.check(BUY, "0.001", "50.00", ETH).approved
    assert_denied(
        desk.check(BUY, "0.0015", "50.00", ETH),
        DenialReason.QUANTITY_NOT_ON_LOT,
        "quantity 0.0015 is not a multiple of lot 0.001 (round down to 0.001)",
    )


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [
        (5003, Rounding.DOWN, 5000),
        (5003, Rounding.UP, 5005),
        (5003, Rounding.NEAREST, 5005),
        (5002, Rounding.NEAREST, 5000),
        (5005, Rounding.UP, 5005),
        (5005, Rounding.DOWN, 5005),
    ],
)
def test_round_to_tick_moves_a_price_onto_the_grid(
    price: int, rounding: Rounding, expected: int
) -> None:
    assert round_to_tick(price, ETH, rounding) == expected


def test_round_to_lot_never_rounds_up() -> None:
    assert round_to_lot(19, ETH) == 10
    assert round_to_lot(20, ETH) == 20


# -- price band -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "at_band", "past_band"), [(BUY, "101.00", "101.01"), (SELL, "99.00", "98.99")]
)
def test_limit_price_at_the_band_is_approved_and_past_it_is_denied(
    side: OrderSide, at_band: str, past_band: str
) -> None:
    desk = Desk(limits(price_band_bps=100))
    assert desk.check(side, "1", at_band).approved
    assert_denied(
        desk.check(side, "1", past_band),
        DenialReason.PRICE_BAND,
        f"price {past_band} is 101.0 bps from mid 100",
        "price_band_bps is 100",
    )


def test_market_order_is_checked_with_the_best_price_it_would_take() -> None:
    desk = Desk(limits(price_band_bps=2))
    desk.context.set_book("binance", "BTCUSDT", book(BTC, "99.98", "100.02"))
    assert desk.check(BUY, "1", market=True).approved
    desk.context.set_book("binance", "BTCUSDT", book(BTC, "99.97", "100.03"))
    assert_denied(
        desk.check(SELL, "1", market=True),
        DenialReason.PRICE_BAND,
        "best price for a market order 99.97 is 3.0 bps from mid 100",
    )


def test_market_order_with_nothing_to_take_is_denied() -> None:
    desk = Desk()
    desk.context.set_book("binance", "BTCUSDT", book(BTC, "99.99", None))
    assert_denied(
        desk.check(BUY, "1", market=True),
        DenialReason.NO_REFERENCE_PRICE,
        "no ask in the book of binance.BTCUSDT",
    )
    assert desk.check(SELL, "1", market=True).approved


def test_price_band_without_a_mid_is_denied() -> None:
    desk = Desk(limits(price_band_bps=100))
    desk.context.set_book("binance", "BTCUSDT", book(BTC, None, "100.01"))
    assert_denied(
        desk.check(BUY, "1", "100.00"), DenialReason.NO_REFERENCE_PRICE, "no mid in the book"
    )


# -- notional -------------------------------------------------------------------


def test_notional_at_the_minimum_is_approved_and_below_it_is_denied() -> None:
    desk = Desk(limits(min_order_notional="10"))
    assert desk.check(BUY, "0.1", "100.00").approved
    assert_denied(
        desk.check(BUY, "0.09999", "100.00"),
        DenialReason.NOTIONAL_BELOW_MIN,
        "notional 9.999 USDT (0.09999 × 100) is below min_order_notional 10 USDT",
    )


def test_notional_at_the_maximum_is_approved_and_above_it_is_denied() -> None:
    desk = Desk(limits(max_order_notional="1000"))
    assert desk.check(SELL, "10", "100.00").approved
    assert_denied(
        desk.check(SELL, "10.00001", "100.00"),
        DenialReason.NOTIONAL_ABOVE_MAX,
        "notional 1000.001 USDT (10.00001 × 100) is above max_order_notional 1000 USDT",
    )


def test_market_order_notional_is_valued_at_the_best_price_it_would_take() -> None:
    desk = Desk(limits(max_order_notional="1000.1"))
    assert desk.check(BUY, "10", market=True).approved  # 10 × 100.01
    assert_denied(
        desk.check(BUY, "10.00001", market=True),
        DenialReason.NOTIONAL_ABOVE_MAX,
        "(10.00001 × 100.01)",
    )


def test_notional_on_big_numbers_is_exact_where_float_is_not() -> None:
    # 18 significant digits of price and size: float cannot hold the product.
    big = Instrument("test", "BIGQUOTE", 8, 8, quote="Q")
    price = big.price("9876543210.12345678")
    size = big.size("1234567890.12345679")
    with localcontext(prec=100):
        exact = Decimal("9876543210.12345678") * Decimal("1234567890.12345679")
        rounded_up = int(exact.quantize(Decimal("1e-8"), rounding=ROUND_CEILING).scaleb(8))
        limit = exact.quantize(Decimal("1e-8"), rounding=ROUND_FLOOR)  # just below exact
    assert notional(price, size, big) == rounded_up
    assert int(float(price) * float(size)) != price * size  # what float arithmetic would lose

    context = StaticRiskContext([big])
    context.set_book("test", "BIGQUOTE", book(big, "9876543210.12345678", "9876543210.12345679"))
    config = RiskConfig(defaults=InstrumentLimits(max_order_notional=limit))
    engine = RiskEngine(config, context, clock=lambda: 0)

    def order(quantity: int) -> OrderRequest:
        return OrderRequest("b", "test", "BIGQUOTE", BUY, OrderType.LIMIT, quantity, price=price)

    assert_denied(
        engine.check(order(size)),
        DenialReason.NOTIONAL_ABOVE_MAX,
        f"notional {exact} Q",
        f"above max_order_notional {limit} Q",
    )
    assert engine.check(order(size - 1)).approved


# -- open orders ----------------------------------------------------------------


def test_working_orders_per_instrument_up_to_the_limit_are_approved() -> None:
    desk = Desk(limits(max_open_orders=2))
    desk.rest(BUY, "1", "99.00")
    desk.rest(BUY, "1", "49.00", ETH)
    assert desk.check(BUY, "1", "98.00").approved
    desk.rest(BUY, "1", "98.00")
    assert_denied(
        desk.check(BUY, "1", "97.00"),
        DenialReason.MAX_OPEN_ORDERS_INSTRUMENT,
        "2 orders already working on binance.BTCUSDT; max_open_orders is 2",
    )
    assert desk.check(BUY, "1", "49.00", ETH).approved


def test_working_orders_per_venue_count_every_instrument_of_the_venue() -> None:
    desk = Desk(RiskConfig(max_open_orders_per_venue=3))
    desk.rest(BUY, "1", "99.00")
    desk.rest(BUY, "1", "49.00", ETH)
    desk.rest(BUY, "1", "140.00", SOL)
    assert desk.check(BUY, "1", "98.00").approved
    desk.rest(BUY, "1", "98.00")
    assert_denied(
        desk.check(BUY, "1", "48.00", ETH),
        DenialReason.MAX_OPEN_ORDERS_VENUE,
        "3 orders already working on binance; max_open_orders_per_venue is 3",
    )
    assert desk.check(BUY, "1", "140.00", SOL).approved


def test_per_instrument_override_replaces_the_default() -> None:
    config = RiskConfig(
        defaults=InstrumentLimits(max_open_orders=1),
        instruments={"binance.ETHUSDT": InstrumentLimits(max_open_orders=3)},
    )
    desk = Desk(config)
    desk.rest(BUY, "1", "99.00")
    desk.rest(BUY, "1", "49.00", ETH)
    assert not desk.check(BUY, "1", "98.00").approved
    assert desk.check(BUY, "1", "48.00", ETH).approved


# -- self-trade -----------------------------------------------------------------


def test_buy_that_would_cross_our_own_sell_is_denied() -> None:
    desk = Desk()
    resting = desk.rest(SELL, "1", "100.01")
    assert desk.check(BUY, "1", "100.00").approved
    assert_denied(
        desk.check(BUY, "1", "100.01"),
        DenialReason.SELF_TRADE,
        f"would cross our own sell order {resting.client_order_id} at 100.01",
    )
    assert_denied(desk.check(BUY, "1", market=True), DenialReason.SELF_TRADE)
    assert desk.check(SELL, "1", "100.00").approved  # same side never crosses


def test_sell_that_would_cross_our_own_buy_is_denied() -> None:
    desk = Desk()
    desk.rest(BUY, "1", "99.99")
    assert desk.check(SELL, "1", "100.00").approved
    assert_denied(desk.check(SELL, "1", "99.99"), DenialReason.SELF_TRADE)
    assert_denied(desk.check(SELL, "1", market=True), DenialReason.SELF_TRADE)


def test_own_orders_on_another_instrument_do_not_count_as_self_trade() -> None:
    desk = Desk()
    desk.rest(SELL, "1", "50.00", ETH)
    assert desk.check(BUY, "1", "100.01").approved


def test_self_trade_prevention_can_be_switched_off() -> None:
    desk = Desk(RiskConfig(self_trade_prevention=False))
    desk.rest(SELL, "1", "100.01")
    assert desk.check(BUY, "1", "100.01").approved


# -- position -------------------------------------------------------------------


def test_position_up_to_the_limit_counting_working_orders_on_the_side_is_approved() -> None:
    desk = Desk(limits(max_position="1"))
    desk.hold("0.5")
    desk.rest(BUY, "0.3", "99.00")
    desk.rest(SELL, "5", "101.00")  # the other side never adds to the worst case
    assert desk.check(BUY, "0.2", "99.50").approved
    assert_denied(
        desk.check(BUY, "0.20001", "99.50"),
        DenialReason.MAX_POSITION,
        "position 0.5 with 0.3 working and buy 0.20001 binance.BTCUSDT at 99.5 could reach "
        "1.00001; max_position is 1",
    )


def test_short_position_is_limited_in_absolute_value() -> None:
    desk = Desk(limits(max_position="1"))
    desk.hold("0.5")
    assert desk.check(SELL, "1.5", "100.00").approved
    assert_denied(desk.check(SELL, "1.50001", "100.00"), DenialReason.MAX_POSITION, "-1.00001")


def test_order_that_reduces_a_position_over_the_limit_is_approved() -> None:
    desk = Desk(limits(max_position="1"))
    desk.hold("3")
    assert desk.check(SELL, "0.5", "100.00").approved
    assert_denied(desk.check(BUY, "0.00001", "100.00"), DenialReason.MAX_POSITION)
    assert_denied(desk.check(SELL, "4.00001", "100.00"), DenialReason.MAX_POSITION)


def test_max_position_is_rounded_towards_zero_to_the_instrument_precision() -> None:
    desk = Desk(limits(max_position="0.123456789"))
    assert desk.check(BUY, "0.12345", "100.00").approved
    assert_denied(desk.check(BUY, "0.12346", "100.00"), DenialReason.MAX_POSITION)


# -- gross exposure ---------------------------------------------------------------


def test_gross_exposure_up_to_the_limit_is_approved() -> None:
    desk = Desk(RiskConfig(max_gross_exposure=Decimal("1000")))
    desk.context.gross_exposure_value = money("899.99")
    assert desk.check(BUY, "1", "100.01").approved
    desk.context.gross_exposure_value = money("899.99000001")
    assert_denied(
        desk.check(BUY, "1", "100.01"),
        DenialReason.MAX_GROSS_EXPOSURE,
        "gross exposure 899.99000001 USDT plus 100.01 USDT",
        "above max_gross_exposure 1000 USDT",
    )


def test_order_priced_below_mid_adds_exposure_at_mid() -> None:
    desk = Desk(RiskConfig(max_gross_exposure=Decimal("1000")))
    desk.context.gross_exposure_value = money("900.01")
    # 1 × 99.00 would fit, but the position it opens is marked at mid (100.00).
    assert_denied(desk.check(BUY, "1", "99.00"), DenialReason.MAX_GROSS_EXPOSURE, "valued at 100")
    desk.context.gross_exposure_value = money("900")
    assert desk.check(BUY, "1", "99.00").approved


def test_order_that_reduces_a_position_passes_the_exposure_limit() -> None:
    desk = Desk(RiskConfig(max_gross_exposure=Decimal("1000")))
    desk.context.gross_exposure_value = money("1500")
    desk.hold("2")
    assert desk.check(SELL, "2", "100.00").approved
    assert_denied(desk.check(SELL, "2.00001", "100.00"), DenialReason.MAX_GROSS_EXPOSURE)


# -- custom checks --------------------------------------------------------------


def no_eth(request: OrderRequest, context: RiskContext) -> RiskDecision | None:
    """A plug-in's check: no ETH today."""
    if request.symbol == "ETHUSDT":
        return RiskDecision.deny(DenialReason.CUSTOM_CHECK, "ETH is paused")
    return None


def broken(request: OrderRequest, context: RiskContext) -> RiskDecision | None:
    """A plug-in's check with a bug."""
    raise KeyError("missing")


def test_custom_check_denies_with_its_name_in_the_detail() -> None:
    desk = Desk()
    desk.engine.register_check("no_eth", no_eth)
    assert desk.check(BUY, "1", "100.00").approved
    assert_denied(
        desk.check(BUY, "1", "50.00", ETH), DenialReason.CUSTOM_CHECK, "no_eth: ETH is paused"
    )
    assert desk.engine.denials[DenialReason.CUSTOM_CHECK] == 1


def test_custom_check_that_raises_fails_closed_and_is_counted() -> None:
    desk = Desk()
    desk.engine.register_check("broken", broken)
    assert_denied(
        desk.check(BUY, "1", "100.00"),
        DenialReason.CUSTOM_CHECK_ERROR,
        "custom check 'broken' raised KeyError",
    )
    assert_denied(desk.check(SELL, "1", "100.00"), DenialReason.CUSTOM_CHECK_ERROR)
    assert desk.engine.check_errors == {"broken": 2}
    assert desk.engine.denials[DenialReason.CUSTOM_CHECK_ERROR] == 2
    desk.engine.unregister_check("broken")
    assert desk.check(BUY, "1", "100.00").approved


def test_custom_checks_run_after_the_built_in_checks_in_registration_order() -> None:
    desk = Desk(limits(max_position="1"))
    calls: list[str] = []

    def first(request: OrderRequest, context: RiskContext) -> RiskDecision | None:
        calls.append("first")
        return APPROVED

    def second(request: OrderRequest, context: RiskContext) -> RiskDecision | None:
        calls.append("second")
        return None

    desk.engine.register_check("first", first)
    desk.engine.register_check("second", second)
    assert desk.engine.custom_checks == ["first", "second"]
    assert not desk.check(BUY, "2", "100.00").approved
    assert calls == []
    assert desk.check(BUY, "1", "100.00").approved
    assert calls == ["first", "second"]


def test_custom_check_names_are_unique() -> None:
    desk = Desk()
    desk.engine.register_check("no_eth", no_eth)
    with pytest.raises(ValueError, match="already registered"):
        desk.engine.register_check("no_eth", no_eth)
    with pytest.raises(ValueError, match="no custom risk check named 'other'"):
        desk.engine.unregister_check("other")


# -- order rate -----------------------------------------------------------------


def test_order_rate_allows_the_burst_then_refills_on_the_injected_clock() -> None:
    desk = Desk(RiskConfig(order_rate=RateLimit(rate_per_s=Decimal(2), burst=3)))
    assert all(desk.check(BUY, "1", "100.00").approved for _ in range(3))
    assert_denied(
        desk.check(BUY, "1", "100.00"),
        DenialReason.ORDER_RATE,
        "order rate on binance above 2 per second (burst 3); next token in 500000000 ns",
    )
    desk.clock.advance(499_999_999)
    assert not desk.check(BUY, "1", "100.00").approved
    desk.clock.advance(1)
    assert desk.check(BUY, "1", "100.00").approved
    assert not desk.check(BUY, "1", "100.00").approved


def test_order_rate_is_per_venue_with_venue_overrides() -> None:
    config = RiskConfig(
        order_rate=RateLimit(rate_per_s=Decimal(1), burst=1),
        venue_order_rates={"okx": RateLimit(rate_per_s=Decimal(1), burst=2)},
    )
    desk = Desk(config)
    assert desk.check(BUY, "1", "100.00").approved
    assert not desk.check(BUY, "1", "50.00", ETH).approved
    assert desk.check(BUY, "1", "150.00", SOL).approved
    assert desk.check(BUY, "1", "150.00", SOL).approved
    assert not desk.check(BUY, "1", "150.00", SOL).approved


def test_denied_orders_use_no_rate_tokens() -> None:
    desk = Desk(
        RiskConfig(
            defaults=InstrumentLimits(max_position=Decimal(1)),
            order_rate=RateLimit(rate_per_s=Decimal(1), burst=1),
        )
    )
    for _ in range(5):
        assert_denied(desk.check(BUY, "2", "100.00"), DenialReason.MAX_POSITION)
    assert desk.check(BUY, "1", "100.00").approved


# -- order of evaluation ----------------------------------------------------------


def test_first_failing_check_wins() -> None:
    desk = Desk(
        RiskConfig(
            defaults=InstrumentLimits(
                max_position=Decimal(1), max_order_notional=Decimal(10), price_band_bps=10
            )
        )
    )
    # Off tick, outside the band, too big and over the position limit: the tick check is first.
    assert desk.check(BUY, "5", "100.03", ETH).reason is DenialReason.PRICE_NOT_ON_TICK
    assert desk.check(BUY, "5", "200.00").reason is DenialReason.PRICE_BAND
    assert desk.check(BUY, "5", "100.00").reason is DenialReason.NOTIONAL_ABOVE_MAX
    assert desk.check(BUY, "0.1", "100.00").approved


def test_custom_check_returning_something_else_fails_closed() -> None:
    desk = Desk()

    def sloppy(request: OrderRequest, context: RiskContext) -> RiskDecision | None:
        return True  # type: ignore[return-value]

    desk.engine.register_check("sloppy", sloppy)
    assert_denied(desk.check(BUY, "1", "100.00"), DenialReason.CUSTOM_CHECK_ERROR, "'sloppy'")
    assert desk.engine.check_errors == {"sloppy": 1}


class BrokenContext(StaticRiskContext):
    """A context whose position lookup has a bug."""

    def position(self, venue: str, symbol: str) -> int:
        raise ZeroDivisionError("division by zero")


def test_context_that_raises_denies_the_order_instead_of_raising() -> None:
    context = BrokenContext()
    context.add_instrument(BTC, book(BTC, "99.99", "100.01"))
    engine = RiskEngine(limits(max_position="1"), context, clock=lambda: 0)
    request = OrderRequest("b", "binance", "BTCUSDT", BUY, OrderType.LIMIT, 1, price=10_000)
    assert_denied(
        engine.check(request),
        DenialReason.CHECK_ERROR,
        "risk check raised ZeroDivisionError: division by zero",
    )
    assert engine.errors == 1
    assert engine.denials[DenialReason.CHECK_ERROR] == 1
