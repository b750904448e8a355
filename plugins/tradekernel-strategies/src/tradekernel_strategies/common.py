"""What the strategies of this distribution share.

* :class:`InstrumentConfig`: the instrument a strategy trades (venue, symbol,
  its price tick and size lot) and the order quantity, all fixed-point.
* :class:`InstrumentStrategy`: tracking of the strategy's own working orders
  (until an event says they are done), book validity, and safe submission.
* :class:`TakerConfig` and :class:`TakerStrategy`: stepping a position towards
  a signal's side with immediate orders, within a position limit, one order at
  a time and a cooldown between orders.
* Grid helpers: :func:`floor_to_tick`, :func:`ceil_to_tick`, :func:`floor_to_lot`.

Units. Prices are integers at the instrument's price precision, sizes integers
at its size precision (Binance spot BTCUSDT in the kernel: both 8 decimals, so
a 0.01 tick is ``1_000_000`` and a 0.00001 lot is ``1_000``). Times are
nanoseconds. Market time is the ``ts_recv`` of the update being handled, or
``context.clock()`` when the update carries none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from tradekernel_sdk import BookView, OrderIntent, Strategy, StrategyContext
from tradekernel_sdk.orders import (
    CancelRejected,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    TimeInForce,
)
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus, Level

__all__ = [
    "BPS",
    "MAX_CANCEL_REJECTS",
    "NS_PER_SECOND",
    "InstrumentConfig",
    "InstrumentStrategy",
    "OrderEnd",
    "TakerConfig",
    "TakerStrategy",
    "WorkingOrder",
    "ceil_to_tick",
    "floor_to_lot",
    "floor_to_tick",
    "side_sizes",
]

NS_PER_SECOND = 1_000_000_000
BPS = 10_000
"""Basis points in one."""

MAX_CANCEL_REJECTS = 3
"""Refused cancels after which an order is forgotten: the venue evidently does not know it."""

_TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.DENIED,
    }
)


def floor_to_tick(price: int, tick: int) -> int:
    """Return the highest multiple of ``tick`` at or below ``price``."""
    return price - price % tick


def ceil_to_tick(price: int, tick: int) -> int:
    """Return the lowest multiple of ``tick`` at or above ``price``."""
    return -(-price // tick) * tick


def floor_to_lot(size: int, lot: int) -> int:
    """Return ``size`` rounded down to a multiple of ``lot``; 0 for a negative size."""
    if size <= 0:
        return 0
    return size - size % lot


def side_sizes(levels: list[Level]) -> int:
    """Return the total size of ``levels``, ignoring zero and negative sizes."""
    total = 0
    for _, size in levels:  # a plain loop: about half the cost of sum() over a generator
        if size > 0:
            total += size
    return total


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


class InstrumentConfig(Strategy.Config, frozen=True, kw_only=True):
    """The instrument a strategy trades and the size of its orders.

    ``tick`` and ``lot`` are the instrument's price and size increments in
    fixed-point units; the strategies cannot look them up, and orders off
    either grid are refused by the venue. ``quantity`` is the size of one
    order in fixed-point size units, a positive multiple of ``lot``.
    """

    venue: str
    symbol: str
    tick: int
    """Price increment in fixed-point price units (BTCUSDT spot at 8 decimals: ``1_000_000``)."""
    lot: int
    """Size increment in fixed-point size units (BTCUSDT spot at 8 decimals: ``1_000``)."""
    quantity: int
    """Size of one order in fixed-point size units; a positive multiple of ``lot``."""

    def __post_init__(self) -> None:
        """Refuse an instrument or quantity the strategy cannot trade."""
        if not self.venue or not self.symbol:
            raise ValueError("venue and symbol must not be empty")
        _positive("tick", self.tick)
        _positive("lot", self.lot)
        if self.quantity <= 0 or self.quantity % self.lot:
            raise ValueError(
                f"quantity must be a positive multiple of lot ({self.lot}), got {self.quantity}"
            )


class TakerConfig(InstrumentConfig, frozen=True, kw_only=True):
    """Configuration shared by the strategies that take liquidity on a signal."""

    max_position: int
    """Largest long position, fixed-point size units (and largest short with ``allow_short``)."""
    allow_short: bool = False
    """Sell below zero; spot accounts cannot, so by default a sell only reduces a long."""
    cooldown_ns: int = NS_PER_SECOND
    """Least market time between two orders."""
    execution: Literal["ioc", "market"] = "ioc"
    """``ioc``: an immediate-or-cancel limit at the touch; ``market``: a market order."""
    order_timeout_ns: int = 10 * NS_PER_SECOND
    """Cancel an order that no final event has ended after this long (its answer was lost)."""

    def __post_init__(self) -> None:
        """Refuse limits the strategy cannot keep."""
        super().__post_init__()
        if self.max_position <= 0 or self.max_position % self.lot:
            raise ValueError(
                f"max_position must be a positive multiple of lot ({self.lot}), "
                f"got {self.max_position}"
            )
        if self.cooldown_ns < 0:
            raise ValueError(f"cooldown_ns must not be negative, got {self.cooldown_ns}")
        if self.order_timeout_ns <= 0:
            raise ValueError(f"order_timeout_ns must be positive, got {self.order_timeout_ns}")


@dataclass(slots=True)
class WorkingOrder:
    """One of the strategy's orders that no event has ended yet."""

    client_order_id: str
    side: OrderSide
    price: int | None
    quantity: int
    leaves: int
    ts_submit: int
    cancel_requested: bool = False
    cancel_rejects: int = 0


class OrderEnd(enum.Enum):
    """How a working order ended."""

    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    """Refused by the venue, or denied by the kernel's risk checks."""
    FORGOTTEN = "forgotten"
    """Its cancels kept being refused; the strategy stopped tracking it."""


class InstrumentStrategy(Strategy):
    """Base of single-instrument strategies: order tracking and book validity.

    Subclasses implement :meth:`handle_book`, called only for the configured
    instrument and only while its book is valid, and may override
    :meth:`order_done` and :meth:`book_invalidated`.

    An order is *working* from its submission until an event ends it: a fill
    leaving nothing, a cancel, an expiry or a rejection (the kernel's risk
    denials arrive as order events too; an ``OrderUpdate`` with a final status
    counts as well). A refused cancel leaves the order working, as the venue
    says; after :data:`MAX_CANCEL_REJECTS` of them the order is forgotten.
    """

    config: InstrumentConfig

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Start with no working orders and the book taken as valid."""
        super().__init__(context, config)
        self.working: dict[str, WorkingOrder] = {}
        self.book_valid = True
        self.stopped = False
        self.last_submit_ns: int | None = None
        self.rejects = 0
        # Events that arrive while ``context.submit`` runs (a venue answering
        # synchronously) name an id the strategy does not know yet.
        self._submitting = False
        self._early: list[OrderEvent] = []

    # -- helpers -------------------------------------------------------------

    def position(self) -> int:
        """Return the net position in fixed-point size units (negative: short)."""
        return self.context.position(self.config.venue, self.config.symbol)

    def is_mine(self, venue: str, symbol: str) -> bool:
        """Return whether ``venue`` and ``symbol`` are the configured instrument."""
        return venue == self.config.venue and symbol == self.config.symbol

    def market_time(self, ts_recv: int) -> int:
        """Return ``ts_recv`` when the event has one, else the context's clock."""
        return ts_recv if ts_recv > 0 else self.context.clock()

    def submit(
        self,
        side: OrderSide,
        quantity: int,
        price: int | None,
        *,
        time_in_force: TimeInForce,
        now: int,
        tag: str,
    ) -> str | None:
        """Submit one order and track it; return its id, or ``None`` when it is not sendable."""
        if self.stopped or quantity <= 0 or (price is not None and price <= 0):
            return None
        intent = OrderIntent(
            venue=self.config.venue,
            symbol=self.config.symbol,
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            tag=tag,
        )
        self._submitting = True
        try:
            client_order_id = self.context.submit(intent)
        finally:
            self._submitting = False
        self.working[client_order_id] = WorkingOrder(
            client_order_id, side, price, quantity, quantity, now
        )
        self.last_submit_ns = now
        early, self._early = self._early, []
        for event in early:
            self.on_order_event(event)
        return client_order_id

    def cancel(self, order: WorkingOrder) -> None:
        """Ask for ``order`` to be cancelled, once until the venue answers."""
        if not order.cancel_requested:
            order.cancel_requested = True
            self.context.cancel(order.client_order_id)

    def cancel_working(self) -> None:
        """Ask for every working order to be cancelled."""
        for order in list(self.working.values()):
            self.cancel(order)

    def retry_refused_cancels(self) -> None:
        """Ask again to cancel the orders whose cancel the venue refused."""
        for order in list(self.working.values()):
            if order.cancel_rejects and not order.cancel_requested:
                self.cancel(order)

    # -- callbacks -----------------------------------------------------------

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        """Hand a valid update of the configured instrument to :meth:`handle_book`."""
        if self.book_valid and self.is_mine(update.venue, update.symbol):
            self.retry_refused_cancels()
            self.handle_book(update, book, self.market_time(update.ts_recv))

    def handle_book(self, update: BookDelta | BookSnapshot, book: BookView, now: int) -> None:
        """React to a book update at market time ``now``; a no-op here."""

    def on_book_status(self, status: BookStatus) -> None:
        """Stop and cancel while the book is not valid; resume when it is again."""
        if not self.is_mine(status.venue, status.symbol):
            return
        if status.state is BookState.VALID:
            self.book_valid = True
            return
        was_valid = self.book_valid
        self.book_valid = False
        self.cancel_working()
        if was_valid:
            self.book_invalidated()

    def book_invalidated(self) -> None:
        """Forget what was learnt from the book's path; a no-op here."""

    def on_order_event(self, event: OrderEvent) -> None:
        """Follow the strategy's working orders until an event ends them."""
        order = self.working.get(event.client_order_id)
        if order is None:
            if self._submitting:
                self._early.append(event)
            return
        end: OrderEnd | None = None
        if isinstance(event, OrderFilled):
            order.leaves = max(event.leaves_quantity, 0)
            if order.leaves == 0:
                end = OrderEnd.FILLED
        elif isinstance(event, OrderCanceled):
            end = OrderEnd.CANCELED
        elif isinstance(event, OrderExpired):
            end = OrderEnd.EXPIRED
        elif isinstance(event, OrderRejected):
            end = OrderEnd.REJECTED
        elif isinstance(event, CancelRejected):
            order.cancel_requested = False
            order.cancel_rejects += 1
            if order.cancel_rejects >= MAX_CANCEL_REJECTS:
                self.context.log.warning(
                    "%s: %d cancels refused (%s); no longer tracking it",
                    order.client_order_id,
                    order.cancel_rejects,
                    event.reason,
                )
                end = OrderEnd.FORGOTTEN
        elif isinstance(event, OrderUpdate) and event.status in _TERMINAL_STATUSES:
            end = _END_OF_STATUS[event.status]
        if end is None:
            return
        del self.working[order.client_order_id]
        if end is OrderEnd.REJECTED:
            self.rejects += 1
        # ts_event is the venue's clock; the strategy's market time is the kernel's.
        self.order_done(order, end, self.context.clock())

    def order_done(self, order: WorkingOrder, end: OrderEnd, now: int) -> None:
        """React to ``order`` no longer working; a no-op here."""

    def on_stop(self) -> None:
        """Cancel every working order and submit nothing more."""
        self.stopped = True
        self.cancel_working()


# OrderSide.value is a descriptor lookup on every access; orders are tagged with the plain name.
_SIDE_NAMES = {side: side.value for side in OrderSide}

_END_OF_STATUS = {
    OrderStatus.FILLED: OrderEnd.FILLED,
    OrderStatus.CANCELED: OrderEnd.CANCELED,
    OrderStatus.EXPIRED: OrderEnd.EXPIRED,
    OrderStatus.REJECTED: OrderEnd.REJECTED,
    OrderStatus.DENIED: OrderEnd.REJECTED,
}


class TakerStrategy(InstrumentStrategy):
    """Step the position towards a signal's side with immediate orders.

    :meth:`step` sends at most one order: none while another is working or
    within ``cooldown_ns`` of the previous one; a buy only up to
    ``max_position``, a sell only down to zero (``-max_position`` with
    ``allow_short``), each at most ``quantity`` and rounded down to the lot.
    An immediate order still working ``order_timeout_ns`` after it was sent
    is cancelled, so a lost answer cannot stop the strategy for good.
    """

    config: TakerConfig

    def step(self, direction: int, book: BookView, now: int, tag: str) -> str | None:
        """Send one order towards ``direction`` (> 0 buy, < 0 sell) if the limits allow."""
        config = self.config
        if self.working:
            for order in list(self.working.values()):
                if now - order.ts_submit >= config.order_timeout_ns:
                    self.cancel(order)
            return None
        if direction == 0:
            return None
        if self.last_submit_ns is not None and now - self.last_submit_ns < config.cooldown_ns:
            return None
        position = self.position()
        if direction > 0:
            side = OrderSide.BUY
            room = config.max_position - position
            touch = book.best_ask()
        else:
            side = OrderSide.SELL
            room = position + (config.max_position if config.allow_short else 0)
            touch = book.best_bid()
        size = floor_to_lot(min(config.quantity, room), config.lot)
        if size <= 0 or touch is None or touch[0] <= 0 or touch[1] <= 0:
            return None
        price: int | None = None
        if config.execution == "ioc":
            price = (
                ceil_to_tick(touch[0], config.tick)
                if side is OrderSide.BUY
                else floor_to_tick(touch[0], config.tick)
            )
        return self.submit(
            side,
            size,
            price,
            time_in_force=TimeInForce.IOC,
            now=now,
            tag=f"{tag}:{_SIDE_NAMES[side]}",
        )
