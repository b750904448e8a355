"""Convert between the kernel's events and the ``ComponentService`` session messages.

Outgoing events carry the kernel's fixed-point integers unchanged, with the
instrument's precisions; incoming intents are converted back exactly, and an
intent the kernel cannot represent is refused with a message that says why.
"""

from __future__ import annotations

from typing import Any

from kernel.api.convert import decimal, order_event, order_update
from tradekernel_sdk.orders import OrderSide, OrderType, OrderUpdate, TimeInForce
from tradekernel_sdk.proto.tradekernel.v1 import components_pb2, market_data_pb2, orders_pb2
from tradekernel_sdk.strategy import OrderIntent
from tradekernel_sdk.types import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    Quote,
    Trade,
)

__all__ = ["IntentError", "intent_from_message", "request_for"]

_BOOK_STATES = {
    BookState.SYNCING: market_data_pb2.BOOK_STATE_SYNCING,
    BookState.VALID: market_data_pb2.BOOK_STATE_VALID,
    BookState.INVALID: market_data_pb2.BOOK_STATE_INVALID,
}
_AGGRESSORS: dict[str, Any] = {
    "buy": market_data_pb2.AGGRESSOR_SIDE_BUY,
    "sell": market_data_pb2.AGGRESSOR_SIDE_SELL,
}


class IntentError(ValueError):
    """An order intent the kernel refuses before risk: the message is sent back as is."""


def _fill_levels(
    target: Any, levels: tuple[Level, ...] | list[Level], price: int, size: int
) -> None:
    """Append ``levels`` to the repeated field ``target``, setting fields in place.

    Filling sub-messages in place is about three times faster than building
    them and copying them in: this runs for every book update a component gets.
    """
    low, high = -(1 << 63), (1 << 63) - 1
    add = target.add
    for level_price, level_size in levels:
        if not (low <= level_price <= high and low <= level_size <= high):
            decimal(level_price, price), decimal(level_size, size)  # raises OUT_OF_RANGE
        level = add()
        level.price.units = level_price
        level.price.precision = price
        level.size.units = level_size
        level.size.precision = size


def request_for(event: Any, instrument: Instrument | None) -> components_pb2.SessionRequest:
    """Return a session message carrying ``event`` (sequence and clock are set by the caller)."""
    price = instrument.price_precision if instrument else 0
    size = instrument.size_precision if instrument else 0
    if isinstance(event, BookDelta):
        request = components_pb2.SessionRequest()
        delta = request.book_delta
        delta.venue, delta.symbol = event.venue, event.symbol
        _fill_levels(delta.bids, event.bids, price, size)
        _fill_levels(delta.asks, event.asks, price, size)
        delta.first_sequence, delta.sequence = event.first_sequence, event.sequence
        delta.ts_event, delta.ts_recv = event.ts_event, event.ts_recv
        return request
    if isinstance(event, BookSnapshot):
        request = components_pb2.SessionRequest()
        snapshot = request.book_snapshot
        snapshot.venue, snapshot.symbol = event.venue, event.symbol
        _fill_levels(snapshot.bids, event.bids, price, size)
        _fill_levels(snapshot.asks, event.asks, price, size)
        snapshot.sequence = event.sequence
        snapshot.ts_event, snapshot.ts_recv = event.ts_event, event.ts_recv
        return request
    if isinstance(event, Quote):
        return components_pb2.SessionRequest(
            quote=market_data_pb2.Quote(
                venue=event.venue,
                symbol=event.symbol,
                bid_price=decimal(event.bid_price, price),
                bid_size=decimal(event.bid_size, size),
                ask_price=decimal(event.ask_price, price),
                ask_size=decimal(event.ask_size, size),
                sequence=event.sequence,
                ts_event=event.ts_event,
                ts_recv=event.ts_recv,
            )
        )
    if isinstance(event, Trade):
        return components_pb2.SessionRequest(
            trade=market_data_pb2.Trade(
                venue=event.venue,
                symbol=event.symbol,
                price=decimal(event.price, price),
                size=decimal(event.size, size),
                aggressor=_AGGRESSORS.get(event.aggressor.value, 0),
                trade_id=event.trade_id,
                ts_event=event.ts_event,
                ts_recv=event.ts_recv,
            )
        )
    if isinstance(event, BookStatus):
        return components_pb2.SessionRequest(
            book_status=market_data_pb2.BookStatus(
                venue=event.venue,
                symbol=event.symbol,
                state=_BOOK_STATES[event.state],
                reason=event.reason,
                sequence=event.sequence,
                ts_recv=event.ts_recv,
            )
        )
    if isinstance(event, OrderUpdate):
        return components_pb2.SessionRequest(order_update=order_update(event, instrument))
    return components_pb2.SessionRequest(order_event=order_event(event, instrument))


def _enum(wrapper: Any, prefix: str, number: int, kind: Any, field: str) -> Any:
    try:
        name = str(wrapper.Name(number)).removeprefix(prefix)
    except ValueError:
        raise IntentError(f"order_intent.{field}: unknown value {number}") from None
    if name == "UNSPECIFIED":
        raise IntentError(f"order_intent.{field}: required")
    return kind[name]


def _units(value: Any, precision: int, field: str) -> int:
    if value.precision > 38:
        raise IntentError(f"order_intent.{field}: precision {value.precision} is above 38")
    given = int(value.precision)
    if given <= precision:
        return int(value.units) * int(10 ** (precision - given))
    whole, rest = divmod(int(value.units), int(10 ** (given - precision)))
    if rest:
        raise IntentError(f"order_intent.{field}: has more than {precision} decimals")
    return int(whole)


def intent_from_message(
    message: orders_pb2.OrderIntent, instrument: Instrument | None
) -> OrderIntent:
    """Return the SDK intent of ``message``; :class:`IntentError` saying what is wrong."""
    if not message.venue or not message.symbol:
        raise IntentError("order_intent: venue and symbol are required")
    if instrument is None:
        raise IntentError(f"order_intent: unknown instrument {message.venue}.{message.symbol}")
    side = _enum(orders_pb2.OrderSide, "ORDER_SIDE_", message.side, OrderSide, "side")
    order_type = _enum(
        orders_pb2.OrderType, "ORDER_TYPE_", message.order_type, OrderType, "order_type"
    )
    time_in_force = (
        TimeInForce.GTC
        if message.time_in_force == orders_pb2.TIME_IN_FORCE_UNSPECIFIED
        else _enum(
            orders_pb2.TimeInForce,
            "TIME_IN_FORCE_",
            message.time_in_force,
            TimeInForce,
            "time_in_force",
        )
    )
    quantity = _units(message.quantity, instrument.size_precision, "quantity")
    price = (
        _units(message.price, instrument.price_precision, "price")
        if message.HasField("price")
        else None
    )
    try:
        return OrderIntent(
            symbol=message.symbol,
            venue=message.venue,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            tag=message.tag,
        )
    except ValueError as error:
        raise IntentError(f"order_intent: {error}") from None
