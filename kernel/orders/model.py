"""Orders as the kernel tracks them: a small state machine over venue events.

::

    PENDING_NEW ──▶ NEW ──▶ PARTIALLY_FILLED ──▶ FILLED
         │           │  ╲          │  ╲
         │           │   ▶ PENDING_CANCEL ──▶ CANCELED
         ▼           ▼                 (fills may still arrive)
     REJECTED     EXPIRED / CANCELED

    DENIED: refused by the risk engine; the order never reached a venue.

Transitions not in :data:`TRANSITIONS` are refused with
:class:`InvalidTransitionError` and leave the order unchanged.
"""

from __future__ import annotations

from typing import Final

from tradekernel_sdk.orders import OrderSide, OrderStatus, OrderType, OrderUpdate, TimeInForce

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "InvalidTransitionError",
    "Order",
    "OrderStatus",
]


S = OrderStatus
TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    S.PENDING_NEW: frozenset(
        {S.NEW, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED, S.CANCELED, S.PENDING_CANCEL}
    ),
    S.NEW: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
    ),
    # A cancel races with the venue: the order may fill, expire or even be
    # rejected before the venue sees the cancel, and the venue may refuse the
    # cancel (back to the status the order had, or the one its fills imply).
    S.PENDING_CANCEL: frozenset(
        {
            S.CANCELED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.EXPIRED,
            S.REJECTED,
            S.PENDING_NEW,
            S.NEW,
            S.PENDING_CANCEL,
        }
    ),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.DENIED: frozenset(),
}
del S

TERMINAL: Final = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
"""Statuses an order never leaves."""


class InvalidTransitionError(ValueError):
    """An event would move an order along an edge the state machine does not have."""


class Order:
    """One order, identified by its client order id (the idempotency key)."""

    __slots__ = (
        "client_order_id",
        "fees",
        "fill_ids",
        "filled_notional",
        "filled_quantity",
        "order_type",
        "price",
        "quantity",
        "reason",
        "side",
        "status",
        "status_before_cancel",
        "strategy",
        "symbol",
        "time_in_force",
        "ts_created",
        "ts_updated",
        "venue",
        "venue_order_id",
    )

    def __init__(
        self,
        *,
        client_order_id: str,
        venue: str,
        symbol: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: int,
        price: int | None,
        time_in_force: TimeInForce,
        strategy: str = "",
        ts_created: int = 0,
    ) -> None:
        self.client_order_id = client_order_id
        self.venue = venue
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.quantity = quantity
        self.price = price
        self.time_in_force = time_in_force
        self.strategy = strategy
        self.status = OrderStatus.PENDING_NEW
        self.venue_order_id = ""
        self.filled_quantity = 0
        # Sum of price * quantity over fills: exact, at price + size precision.
        self.filled_notional = 0
        self.fees = 0
        self.reason = ""
        self.ts_created = ts_created
        self.ts_updated = ts_created
        self.status_before_cancel: OrderStatus | None = None
        self.fill_ids: set[str] = set()

    @property
    def leaves_quantity(self) -> int:
        """Return the quantity still working (0 once the order is terminal)."""
        if self.status in TERMINAL:
            return 0
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        """Return whether the order can still trade."""
        return self.status not in TERMINAL

    def transition(self, status: OrderStatus, ts_ns: int) -> None:
        """Move to ``status``; raise :class:`InvalidTransitionError` for an edge not allowed."""
        if status not in TRANSITIONS[self.status]:
            raise InvalidTransitionError(
                f"order {self.client_order_id}: {self.status.value} -> {status.value} "
                "is not a valid transition"
            )
        if status is OrderStatus.PENDING_CANCEL and self.status is not OrderStatus.PENDING_CANCEL:
            self.status_before_cancel = self.status
        self.status = status
        self.ts_updated = ts_ns

    def apply_fill(self, quantity: int, price: int, fee: int, ts_ns: int) -> None:
        """Record a fill and move to PARTIALLY_FILLED or FILLED."""
        if quantity <= 0:
            raise InvalidTransitionError(
                f"order {self.client_order_id}: fill quantity must be positive, got {quantity}"
            )
        if self.filled_quantity + quantity > self.quantity:
            raise InvalidTransitionError(
                f"order {self.client_order_id}: fill of {quantity} exceeds the "
                f"{self.quantity - self.filled_quantity} left"
            )
        complete = self.filled_quantity + quantity == self.quantity
        if complete:
            status = OrderStatus.FILLED
        elif self.status is OrderStatus.PENDING_CANCEL:
            status = OrderStatus.PENDING_CANCEL  # still waiting for the cancel's answer
        else:
            status = OrderStatus.PARTIALLY_FILLED
        self.transition(status, ts_ns)
        self.filled_quantity += quantity
        self.filled_notional += price * quantity
        self.fees += fee

    def cancel_refused(self, ts_ns: int) -> None:
        """Return from PENDING_CANCEL to the status the order had (a venue refused the cancel)."""
        if self.status is not OrderStatus.PENDING_CANCEL:
            return
        previous = self.status_before_cancel or OrderStatus.NEW
        if self.filled_quantity and previous is OrderStatus.NEW:
            previous = OrderStatus.PARTIALLY_FILLED
        self.transition(previous, ts_ns)

    def snapshot(self) -> OrderUpdate:
        """Return an immutable copy of the order's current state."""
        return OrderUpdate(
            client_order_id=self.client_order_id,
            strategy=self.strategy,
            venue=self.venue,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            price=self.price,
            status=self.status,
            filled_quantity=self.filled_quantity,
            filled_notional=self.filled_notional,
            fees=self.fees,
            reason=self.reason,
            ts_event=self.ts_updated,
        )

    def __repr__(self) -> str:
        return (
            f"Order({self.client_order_id!r}, {self.side.value} {self.quantity} "
            f"{self.symbol}@{self.price}, {self.status.value}, filled {self.filled_quantity})"
        )
