"""Order domain types: requests a strategy sends and the events a venue answers with.

Like the market-data types these are immutable ``msgspec`` structs with
fixed-point integer prices and sizes at the instrument's precision, and integer
nanosecond timestamps. Fees are fixed-point in the instrument's quote currency
at :data:`FEE_PRECISION` decimals, whatever the instrument: fees from different
instruments with the same quote currency add up directly.

Every order event carries ``client_order_id`` (chosen by the sender),
``venue_order_id`` (assigned by the venue on acceptance; empty when the venue
never accepted the order), ``venue``, ``symbol`` and ``ts_event`` (the venue's
time of the event). The life of an order is::

    OrderAccepted -> OrderFilled* -> (last fill with leaves_quantity 0
                                      | OrderCanceled | OrderExpired)
    OrderRejected                        (never accepted)

A cancel that cannot be applied is answered with :class:`CancelRejected` and
leaves the order as it was.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "FEE_PRECISION",
    "CancelRejected",
    "CancelRequest",
    "Liquidity",
    "OrderAccepted",
    "OrderCanceled",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "TimeInForce",
]

FEE_PRECISION = 8
"""Decimals of every fee: a fee of ``123`` is ``0.00000123`` of the quote currency."""


class OrderSide(enum.Enum):
    """Direction of an order."""

    BUY = "buy"
    SELL = "sell"


class OrderType(enum.Enum):
    """How an order's price is set."""

    LIMIT = "limit"
    """Trade at ``price`` or better."""
    MARKET = "market"
    """Trade at whatever the book offers; carries no price."""


class TimeInForce(enum.Enum):
    """How long an order stays working."""

    GTC = "gtc"
    """Good till cancelled: what does not fill at once rests in the book."""
    IOC = "ioc"
    """Immediate or cancel: fill what is possible at once, expire the rest."""
    FOK = "fok"
    """Fill or kill: fill the whole quantity at once or nothing."""
    POST_ONLY = "post_only"
    """Rest in the book as maker only; rejected if it would take liquidity."""


class OrderStatus(enum.Enum):
    """Where an order is in its life, as the kernel's order manager tracks it."""

    PENDING_NEW = "pending_new"
    """Sent to the venue, not yet acknowledged."""
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    """A cancel was sent; fills may still arrive before its answer."""
    CANCELED = "canceled"
    REJECTED = "rejected"
    """The venue refused the order."""
    EXPIRED = "expired"
    """The venue ended the order itself (an IOC remainder, a market order out of liquidity)."""
    DENIED = "denied"
    """The kernel's risk engine refused the order; it never reached a venue."""


class Liquidity(enum.Enum):
    """Whether a fill added liquidity to the book or took it."""

    MAKER = "maker"
    TAKER = "taker"


class OrderRequest(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """A new order.

    ``price`` is required for limit orders and must be ``None`` for market
    orders. ``ts_submit`` is the sender's clock at submission.
    """

    client_order_id: str
    venue: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    ts_submit: int = 0


class CancelRequest(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """A request to cancel the working remainder of an order."""

    client_order_id: str
    venue: str
    symbol: str
    ts_submit: int = 0


class OrderAccepted(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The venue accepted the order and gave it ``venue_order_id``."""

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int


class OrderRejected(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The venue refused the order; ``venue_order_id`` is empty."""

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int
    reason: str


class OrderFilled(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """Part or all of an order traded.

    ``quantity`` is this fill's size and ``leaves_quantity`` what is still
    working after it (0: the order is complete). ``fee`` is fixed-point in the
    quote currency at :data:`FEE_PRECISION` decimals; negative is a rebate.
    """

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int
    fill_id: str
    price: int
    quantity: int
    leaves_quantity: int
    fee: int
    liquidity: Liquidity


class OrderCanceled(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The working remainder was cancelled at the sender's request."""

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int


class OrderExpired(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The venue ended the order itself (IOC/FOK remainder, market order out of liquidity)."""

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int
    reason: str


class CancelRejected(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """A cancel could not be applied (unknown order, already complete); the order is unchanged."""

    client_order_id: str
    venue_order_id: str
    venue: str
    symbol: str
    ts_event: int
    reason: str


class OrderUpdate(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The order manager's view of one order after a change, sent to its strategy.

    ``filled_notional`` is the sum of ``price * quantity`` over fills (at price
    + size precision), so the average fill price is exact as a fraction.
    """

    client_order_id: str
    strategy: str
    venue: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int | None
    status: OrderStatus
    filled_quantity: int
    filled_notional: int
    fees: int
    reason: str
    ts_event: int


OrderEvent = (
    OrderAccepted | OrderRejected | OrderFilled | OrderCanceled | OrderExpired | CancelRejected
)
"""Every event a venue publishes about orders."""
