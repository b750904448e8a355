"""The individual pre-trade checks, and helpers strategies can use to pass them.

Each check is a function that returns ``None`` when the order passes and a
denial (:class:`~kernel.risk.messages.RiskDecision`) when it does not. The
engine (:mod:`kernel.risk.engine`) runs them in the documented order and
gathers what they need (instrument, book, position, working orders) once per
order; building the detail string only on denial keeps the approve path free
of allocation.

Arithmetic is exact on integers. A notional is ``price * quantity`` at
``price_precision + size_precision`` decimals; it is compared with limits at
8 decimals by scaling both sides, never by dividing, and never through float.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from fractions import Fraction

from kernel.risk.config import NOTIONAL_PRECISION, NOTIONAL_SCALE, ResolvedLimits
from kernel.risk.context import OpenOrderView
from kernel.risk.messages import DenialReason, RiskDecision, TradingState
from tradekernel_sdk.fixedpoint import from_fixed
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType
from tradekernel_sdk.types import BookState, Instrument

__all__ = [
    "Rounding",
    "check_book",
    "check_gross_exposure",
    "check_lot",
    "check_notional",
    "check_open_orders_instrument",
    "check_open_orders_venue",
    "check_order_fields",
    "check_position",
    "check_price_band",
    "check_reducing",
    "check_self_trade",
    "check_tick",
    "format_amount",
    "is_reducing",
    "notional",
    "round_to_lot",
    "round_to_tick",
    "same_side_leaves",
]

_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_VALID = BookState.VALID


# -- helpers -------------------------------------------------------------------


class Rounding(enum.Enum):
    """Which way :func:`round_to_tick` moves a price that is off the grid."""

    DOWN = "down"
    UP = "up"
    NEAREST = "nearest"
    """The nearest multiple; halfway goes up."""


def round_to_tick(price: int, instrument: Instrument, rounding: Rounding = Rounding.NEAREST) -> int:
    """Return ``price`` moved onto the instrument's tick grid.

    Round buys ``DOWN`` and sells ``UP`` to never be more aggressive than asked.
    """
    tick = instrument.tick
    below = price - price % tick
    if below == price or rounding is Rounding.DOWN:
        return below
    if rounding is Rounding.UP:
        return below + tick
    return below + tick if 2 * (price - below) >= tick else below


def round_to_lot(quantity: int, instrument: Instrument) -> int:
    """Return ``quantity`` rounded down to a multiple of the lot (never more than asked)."""
    return quantity - quantity % instrument.lot


def notional(price: int, quantity: int, instrument: Instrument) -> int:
    """Return ``price * quantity`` in ``10**-8`` quote currency, rounded up (exact integers)."""
    scale: int = 10 ** (instrument.price_precision + instrument.size_precision)
    return -(-price * quantity * NOTIONAL_SCALE // scale)


def format_amount(value: int, precision: int) -> str:
    """Return a fixed-point value as a decimal string without trailing zeros."""
    text = from_fixed(value, precision)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _money(value: int, instrument: Instrument) -> str:
    """Format an amount in ``10**-8`` quote currency with the currency's name."""
    text = format_amount(value, NOTIONAL_PRECISION)
    return f"{text} {instrument.quote}" if instrument.quote else text


def _raw_money(raw: int, instrument: Instrument) -> str:
    """Format ``price * quantity`` (at both precisions) exactly, with the currency."""
    text = format_amount(raw, instrument.price_precision + instrument.size_precision)
    return f"{text} {instrument.quote}" if instrument.quote else text


def _price(value: int, instrument: Instrument) -> str:
    return format_amount(value, instrument.price_precision)


def _size(value: int, instrument: Instrument) -> str:
    return format_amount(value, instrument.size_precision)


def _describe(request: OrderRequest, instrument: Instrument) -> str:
    text = f"{request.side.value} {_size(request.quantity, instrument)} {instrument.key}"
    if request.price is not None:
        text += f" at {_price(request.price, instrument)}"
    return text


# -- the checks, in the engine's order -------------------------------------------


def check_order_fields(request: OrderRequest, instrument: Instrument) -> RiskDecision | None:
    """Deny an order whose fields contradict each other (``INVALID_ORDER``)."""
    if request.quantity <= 0:
        detail = f"quantity {_size(request.quantity, instrument)} must be positive"
    elif request.order_type is _LIMIT:
        if request.price is None:
            detail = "a limit order needs a price"
        elif request.price <= 0:
            detail = f"price {_price(request.price, instrument)} must be positive"
        else:
            return None
    elif request.price is not None:
        detail = "a market order carries no price"
    else:
        return None
    return RiskDecision.deny(DenialReason.INVALID_ORDER, detail)


def check_book(state: BookState, has_book: bool, instrument: Instrument) -> RiskDecision | None:
    """Deny every order on a book that is not VALID, or missing (``BOOK_INVALID``)."""
    if state is _VALID and has_book:
        return None
    if state is _VALID:
        detail = f"no book for {instrument.key}"
    else:
        detail = f"book of {instrument.key} is {state.value}: no trading on an invalid book"
    return RiskDecision.deny(DenialReason.BOOK_INVALID, detail)


def check_tick(request: OrderRequest, instrument: Instrument) -> RiskDecision | None:
    """Deny a limit price that is not a multiple of the tick (``PRICE_NOT_ON_TICK``)."""
    price = request.price
    if price is None or price % instrument.tick == 0:
        return None
    below = round_to_tick(price, instrument, Rounding.DOWN)
    return RiskDecision.deny(
        DenialReason.PRICE_NOT_ON_TICK,
        f"price {_price(price, instrument)} is not on tick {_price(instrument.tick, instrument)}"
        f" (nearest {_price(below, instrument)} or {_price(below + instrument.tick, instrument)})",
    )


def check_lot(request: OrderRequest, instrument: Instrument) -> RiskDecision | None:
    """Deny a quantity that is not a multiple of the lot (``QUANTITY_NOT_ON_LOT``)."""
    quantity = request.quantity
    if quantity % instrument.lot == 0:
        return None
    return RiskDecision.deny(
        DenialReason.QUANTITY_NOT_ON_LOT,
        f"quantity {_size(quantity, instrument)} is not a multiple of lot "
        f"{_size(instrument.lot, instrument)} (round down to "
        f"{_size(round_to_lot(quantity, instrument), instrument)})",
    )


def check_price_band(
    request: OrderRequest, price: int, mid_x2: int, band_bps: int, instrument: Instrument
) -> RiskDecision | None:
    """Deny a price more than ``band_bps`` from mid (``PRICE_BAND``, the fat-finger check).

    ``price`` is the limit price, or for a market order the best price on the
    side it takes. ``mid_x2`` is twice the mid, so the comparison
    ``|2 * price - mid_x2| * 10_000 <= band_bps * mid_x2`` stays in integers.
    """
    distance_x2 = 2 * price - mid_x2
    if distance_x2 < 0:
        distance_x2 = -distance_x2
    if distance_x2 * 10_000 <= band_bps * mid_x2:
        return None
    bps = Fraction(distance_x2 * 10_000, mid_x2)
    what = "price" if request.order_type is _LIMIT else "best price for a market order"
    return RiskDecision.deny(
        DenialReason.PRICE_BAND,
        f"{what} {_price(price, instrument)} is {float(bps):.1f} bps from mid "
        f"{format_amount(mid_x2 * 5, instrument.price_precision + 1)}; "
        f"price_band_bps is {band_bps}",
    )


def check_notional(
    request: OrderRequest, price: int, limits: ResolvedLimits
) -> RiskDecision | None:
    """Deny a notional below the minimum or above the maximum (``NOTIONAL_BELOW_MIN/ABOVE_MAX``).

    ``price`` is the limit price, or for a market order the best price on the
    side it takes.
    """
    raw = price * request.quantity
    scaled = raw * NOTIONAL_SCALE
    low = limits.min_order_notional_scaled
    high = limits.max_order_notional_scaled
    if low is not None and scaled < low:
        reason = DenialReason.NOTIONAL_BELOW_MIN
        bound = (
            f"below min_order_notional {_money(limits.min_order_notional or 0, limits.instrument)}"
        )
    elif high is not None and scaled > high:
        reason = DenialReason.NOTIONAL_ABOVE_MAX
        bound = (
            f"above max_order_notional {_money(limits.max_order_notional or 0, limits.instrument)}"
        )
    else:
        return None
    instrument = limits.instrument
    return RiskDecision.deny(
        reason,
        f"notional {_raw_money(raw, instrument)} ({_size(request.quantity, instrument)} × "
        f"{_price(price, instrument)}) is {bound}",
    )


def check_open_orders_instrument(
    count: int, max_open_orders: int, instrument: Instrument
) -> RiskDecision | None:
    """Deny a new order when ``count`` are already working on the instrument."""
    if count < max_open_orders:
        return None
    return RiskDecision.deny(
        DenialReason.MAX_OPEN_ORDERS_INSTRUMENT,
        f"{count} orders already working on {instrument.key}; max_open_orders is {max_open_orders}",
    )


def check_open_orders_venue(count: int, max_open_orders: int, venue: str) -> RiskDecision | None:
    """Deny a new order when ``count`` are already working on the venue."""
    if count < max_open_orders:
        return None
    return RiskDecision.deny(
        DenialReason.MAX_OPEN_ORDERS_VENUE,
        f"{count} orders already working on {venue}; max_open_orders_per_venue is "
        f"{max_open_orders}",
    )


def check_self_trade(
    request: OrderRequest, orders: Sequence[OpenOrderView], instrument: Instrument
) -> RiskDecision | None:
    """Deny an order that would trade against one of our own working orders (``SELF_TRADE``).

    A buy crosses a working sell priced at or below it, a sell a working buy
    priced at or above it; a market order crosses any working order on the
    other side.
    """
    price = request.price
    if request.side is _BUY:
        for order in orders:
            if order.side is _SELL and (price is None or order.price <= price):
                break
        else:
            return None
    else:
        for order in orders:
            if order.side is _BUY and (price is None or order.price >= price):
                break
        else:
            return None
    return RiskDecision.deny(
        DenialReason.SELF_TRADE,
        f"{_describe(request, instrument)} would cross our own {order.side.value} order "
        f"{order.client_order_id} at {_price(order.price, instrument)}",
    )


def same_side_leaves(orders: Sequence[OpenOrderView], side: OrderSide) -> int:
    """Return the total working quantity of ``orders`` on ``side``."""
    total = 0
    for order in orders:
        if order.side is side:
            total += order.leaves_quantity
    return total


def is_reducing(side: OrderSide, quantity: int, position: int, same_side: int) -> bool:
    """Return whether the order, with ``same_side`` already working, reduces without flipping.

    True when the order is against the position and, even if every working
    order on its side filled too, the position would not pass through zero.
    """
    if side is _BUY:
        return position < 0 and same_side + quantity <= -position
    return position > 0 and same_side + quantity <= position


def check_reducing(
    request: OrderRequest,
    *,
    state: TradingState,
    reducing: bool,
    position: int,
    same_side: int,
    instrument: Instrument,
) -> RiskDecision | None:
    """In REDUCING, deny an order that does not reduce its position (``TRADING_REDUCING``)."""
    if state is not TradingState.REDUCING or reducing:
        return None
    return RiskDecision.deny(
        DenialReason.TRADING_REDUCING,
        f"trading is reducing only: {_describe(request, instrument)} with "
        f"{_size(same_side, instrument)} working on its side would not reduce position "
        f"{_size(position, instrument)} without flipping it",
    )


def check_position(
    request: OrderRequest,
    *,
    position: int,
    same_side: int,
    reducing: bool,
    max_position: int,
    instrument: Instrument,
) -> RiskDecision | None:
    """Deny an order that could take the absolute position past ``max_position``.

    The position is projected as if this order and every working order on its
    side filled completely. An order that reduces the position is always
    allowed, so an account over its limit can get back under it.
    """
    if request.side is _BUY:
        projected = position + same_side + request.quantity
    else:
        projected = position - same_side - request.quantity
    if -max_position <= projected <= max_position or reducing:
        return None
    return RiskDecision.deny(
        DenialReason.MAX_POSITION,
        f"position {_size(position, instrument)} with {_size(same_side, instrument)} working "
        f"and {_describe(request, instrument)} could reach {_size(projected, instrument)}; "
        f"max_position is {_size(max_position, instrument)}",
    )


def check_gross_exposure(
    request: OrderRequest,
    *,
    value_price: int,
    gross_exposure: int,
    reducing: bool,
    limits: ResolvedLimits,
) -> RiskDecision | None:
    """Deny an order that takes gross exposure past the maximum (``MAX_GROSS_EXPOSURE``).

    The order adds ``value_price * quantity`` (the engine passes the larger of
    the order's price and the mid, as positions are marked at mid) to the
    context's gross exposure. An order that reduces its position is allowed.
    """
    limit = limits.max_gross_exposure_scaled
    if limit is None:
        return None
    raw = value_price * request.quantity
    if gross_exposure * limits.scale + raw * NOTIONAL_SCALE <= limit or reducing:
        return None
    instrument = limits.instrument
    return RiskDecision.deny(
        DenialReason.MAX_GROSS_EXPOSURE,
        f"gross exposure {_money(gross_exposure, instrument)} plus {_raw_money(raw, instrument)}"
        f" ({_describe(request, instrument)}, valued at {_price(value_price, instrument)}) is "
        f"above max_gross_exposure {_money(limits.max_gross_exposure or 0, instrument)}",
    )
