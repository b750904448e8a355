"""What the risk engine answers and what it publishes.

:class:`RiskDecision` is the answer to one order intent. Denials carry a
:class:`DenialReason` (a stable code to count and alert on) and a detail string
that names the values compared. The engine publishes :class:`OrderDenied` and
:class:`TradingStateChanged` on the bus topic ``events.risk``.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "APPROVED",
    "DenialReason",
    "OrderDenied",
    "RiskDecision",
    "RiskEvent",
    "TradingState",
    "TradingStateChanged",
]


class TradingState(enum.Enum):
    """What the engine lets through."""

    ACTIVE = "active"
    """Every order that passes the checks."""
    REDUCING = "reducing"
    """Only orders that reduce their instrument's absolute position without flipping it."""
    HALTED = "halted"
    """No new order at all; cancels are still allowed."""


class DenialReason(enum.Enum):
    """Why an order was denied; one code per check (see ``docs/risk.md``)."""

    TRADING_HALTED = "trading_halted"
    INSTRUMENT_UNKNOWN = "instrument_unknown"
    INVALID_ORDER = "invalid_order"
    BOOK_INVALID = "book_invalid"
    PRICE_NOT_ON_TICK = "price_not_on_tick"
    QUANTITY_NOT_ON_LOT = "quantity_not_on_lot"
    NO_REFERENCE_PRICE = "no_reference_price"
    PRICE_BAND = "price_band"
    NOTIONAL_BELOW_MIN = "notional_below_min"
    NOTIONAL_ABOVE_MAX = "notional_above_max"
    MAX_OPEN_ORDERS_INSTRUMENT = "max_open_orders_instrument"
    MAX_OPEN_ORDERS_VENUE = "max_open_orders_venue"
    SELF_TRADE = "self_trade"
    TRADING_REDUCING = "trading_reducing"
    MAX_POSITION = "max_position"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    CUSTOM_CHECK = "custom_check"
    CUSTOM_CHECK_ERROR = "custom_check_error"
    ORDER_RATE = "order_rate"
    CHECK_ERROR = "check_error"
    """A built-in check or the context raised: the engine fails closed."""


class RiskDecision(msgspec.Struct, frozen=True, array_like=True):
    """The engine's answer to one order intent.

    An approval is the shared :data:`APPROVED` instance (``reason`` None,
    ``detail`` empty); build denials with :meth:`deny`.
    """

    approved: bool
    reason: DenialReason | None = None
    detail: str = ""

    @classmethod
    def deny(cls, reason: DenialReason, detail: str) -> RiskDecision:
        """Return a denial with its reason code and a detail naming the values compared."""
        return cls(False, reason, detail)


APPROVED = RiskDecision(True)
"""The one approval every passing check returns: approving allocates nothing."""


class OrderDenied(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """An order intent the engine denied; ``ts`` is the engine's clock at the check."""

    client_order_id: str
    venue: str
    symbol: str
    reason: DenialReason
    detail: str
    ts: int


class TradingStateChanged(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The trading state moved from ``previous`` to ``state`` for ``reason``."""

    previous: TradingState
    state: TradingState
    reason: str
    ts: int


RiskEvent = OrderDenied | TradingStateChanged
"""Every event the engine publishes on ``events.risk``."""
