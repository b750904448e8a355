"""Convert between the kernel's fixed-point integers and enums and the ``tradekernel.v1`` messages.

A ``Decimal`` carries the kernel's integer unchanged with its precision; an
``Amount`` is the canonical decimal string of an integer at a precision
(``docs/api-protos.md``). A value outside ``sint64`` fails with OUT_OF_RANGE,
never wraps.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import grpc

from kernel.api.errors import ApiError, invalid
from kernel.orders import Order
from kernel.portfolio import Position
from tradekernel_sdk.fixedpoint import from_fixed
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    CancelRejected,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUpdate,
)
from tradekernel_sdk.proto.tradekernel.v1 import orders_pb2, portfolio_pb2, types_pb2
from tradekernel_sdk.types import Instrument

__all__ = [
    "amount",
    "decimal",
    "from_proto_enum",
    "instrument_message",
    "order_event",
    "order_filled",
    "order_update",
    "position_message",
    "to_proto_enum",
    "units_at",
]

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)

_E = TypeVar("_E", bound=enum.Enum)


def decimal(units: int, precision: int) -> types_pb2.Decimal:
    """Return ``units`` at ``precision`` as a ``Decimal``; OUT_OF_RANGE when it does not fit."""
    if not _INT64_MIN <= units <= _INT64_MAX:
        raise ApiError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"{from_fixed(units, precision)} does not fit a 64-bit Decimal at {precision} decimals",
        )
    return types_pb2.Decimal(units=units, precision=precision)


def amount(units: int, precision: int) -> types_pb2.Amount:
    """Return ``units`` at ``precision`` as a canonical ``Amount`` string."""
    return types_pb2.Amount(value=from_fixed(units, precision))


def units_at(value: types_pb2.Decimal, precision: int, field: str) -> int:
    """Return ``value`` as an integer at ``precision``; INVALID_ARGUMENT when not exact."""
    if value.precision > 38:
        raise invalid(field, f"precision {value.precision} is above 38")
    if value.precision <= precision:
        return int(value.units * 10 ** (precision - value.precision))
    scale = int(10 ** (value.precision - precision))
    if value.units % scale:
        raise invalid(field, f"has more than {precision} decimals")
    return int(value.units // scale)


def to_proto_enum(wrapper: Any, prefix: str, member: enum.Enum) -> Any:
    """Return the proto value of an SDK or kernel enum member (``PREFIX_NAME``)."""
    return wrapper.Value(f"{prefix}_{member.name}")


def from_proto_enum(wrapper: Any, prefix: str, number: int, kind: type[_E], field: str) -> _E:
    """Return the enum member of a proto value; INVALID_ARGUMENT for unset or unknown values."""
    try:
        name = str(wrapper.Name(number))
    except ValueError:
        raise invalid(field, f"unknown value {number}") from None
    member = name.removeprefix(f"{prefix}_")
    if member == "UNSPECIFIED" or member not in kind.__members__:
        raise invalid(field, "must be set")
    return kind[member]


def instrument_message(instrument: Instrument) -> types_pb2.Instrument:
    """Return an instrument with its precisions, tick and lot."""
    return types_pb2.Instrument(
        venue=instrument.venue,
        symbol=instrument.symbol,
        price_precision=instrument.price_precision,
        size_precision=instrument.size_precision,
        tick=decimal(instrument.tick, instrument.price_precision),
        lot=decimal(instrument.lot, instrument.size_precision),
        base=instrument.base,
        quote=instrument.quote,
    )


def order_update(
    order: Order | OrderUpdate, instrument: Instrument | None
) -> orders_pb2.OrderUpdate:
    """Return the order manager's view of ``order``; precisions come from ``instrument``."""
    update = order.snapshot() if isinstance(order, Order) else order
    price_precision = instrument.price_precision if instrument else 0
    size_precision = instrument.size_precision if instrument else 0
    message = orders_pb2.OrderUpdate(
        client_order_id=update.client_order_id,
        strategy=update.strategy,
        venue=update.venue,
        symbol=update.symbol,
        side=to_proto_enum(orders_pb2.OrderSide, "ORDER_SIDE", update.side),
        order_type=to_proto_enum(orders_pb2.OrderType, "ORDER_TYPE", update.order_type),
        quantity=decimal(update.quantity, size_precision),
        status=to_proto_enum(orders_pb2.OrderStatus, "ORDER_STATUS", update.status),
        filled_quantity=decimal(update.filled_quantity, size_precision),
        filled_notional=amount(update.filled_notional, price_precision + size_precision),
        fees=decimal(update.fees, FEE_PRECISION),
        reason=update.reason,
        ts_event=update.ts_event,
    )
    if update.price is not None:
        message.price.CopyFrom(decimal(update.price, price_precision))
    return message


VenueEvent = (
    OrderAccepted | OrderRejected | OrderFilled | OrderCanceled | OrderExpired | CancelRejected
)
"""A venue's event about an order, as the order manager publishes it."""


def order_filled(event: OrderFilled, instrument: Instrument | None) -> orders_pb2.OrderFilled:
    """Return one fill; precisions come from ``instrument``."""
    price_precision = instrument.price_precision if instrument else 0
    size_precision = instrument.size_precision if instrument else 0
    return orders_pb2.OrderFilled(
        client_order_id=event.client_order_id,
        venue_order_id=event.venue_order_id,
        venue=event.venue,
        symbol=event.symbol,
        ts_event=event.ts_event,
        fill_id=event.fill_id,
        price=decimal(event.price, price_precision),
        quantity=decimal(event.quantity, size_precision),
        leaves_quantity=decimal(event.leaves_quantity, size_precision),
        fee=decimal(event.fee, FEE_PRECISION),
        liquidity=to_proto_enum(orders_pb2.Liquidity, "LIQUIDITY", event.liquidity),
    )


def order_event(event: VenueEvent, instrument: Instrument | None) -> orders_pb2.OrderEvent:
    """Return a venue's order event in its ``OrderEvent`` oneof."""
    if isinstance(event, OrderFilled):
        return orders_pb2.OrderEvent(filled=order_filled(event, instrument))
    message = orders_pb2.OrderEvent()
    if isinstance(event, OrderAccepted):
        target: Any = message.accepted
    elif isinstance(event, OrderRejected):
        target = message.rejected
    elif isinstance(event, OrderCanceled):
        target = message.canceled
    elif isinstance(event, OrderExpired):
        target = message.expired
    else:
        target = message.cancel_rejected
    target.client_order_id = event.client_order_id
    target.venue_order_id = event.venue_order_id
    target.venue = event.venue
    target.symbol = event.symbol
    target.ts_event = event.ts_event
    if isinstance(event, OrderRejected | OrderExpired | CancelRejected):
        target.reason = event.reason
    return message


def position_message(venue: str, position: Position, mark: int | None) -> portfolio_pb2.Position:
    """Return one position with its P&L, valued at ``mark`` when there is one."""
    instrument = position.instrument
    notional = position.notional_precision
    message = portfolio_pb2.Position(
        venue=venue,
        symbol=instrument.symbol,
        quantity=decimal(position.quantity, instrument.size_precision),
        cost=amount(position.cost(), notional),
        realised_pnl=amount(position.realised, notional),
        fees=decimal(position.fees, FEE_PRECISION),
        traded=decimal(position.traded, instrument.size_precision),
    )
    if mark is not None:
        message.unrealised_pnl.CopyFrom(amount(position.unrealised(mark), notional))
        message.mark_price.CopyFrom(decimal(mark, instrument.price_precision))
    return message
