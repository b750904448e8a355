"""The order manager: every order passes risk, is journaled, then routed.

Commands (submit, cancel) and venue events are appended to the journal
*before* they change any state or leave the process, so replaying the
journal after a crash rebuilds exactly the orders and positions the kernel had
acknowledged. Client order ids are idempotency keys: a second submit with the
same id returns the first order and sends nothing.

Journal records (kind → payload):

* ``instrument``: ``[venue, encoded Instrument]``, before the first order on it, so
  a replay values fills without waiting for market data
* ``submit``: ``[strategy, encoded OrderRequest]``
* ``deny``: ``[strategy, encoded OrderRequest, reason, detail]``
* ``cancel``: ``[encoded CancelRequest]``
* ``event``: ``[encoded venue order event]``
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter_ns
from typing import Any, Protocol

from kernel.bus import Bus, topics
from kernel.metrics import TickToOrder
from kernel.orders.model import InvalidTransitionError, Order, OrderStatus
from kernel.paper import VenueOrderRecord
from kernel.portfolio import Portfolio
from tradekernel_sdk import codec
from tradekernel_sdk.orders import (
    CancelRejected,
    CancelRequest,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequest,
)
from tradekernel_sdk.types import Instrument

__all__ = ["JournalWriter", "OrderManager", "OrderVenue", "RiskGate", "RiskVerdict"]

log = logging.getLogger(__name__)


class JournalWriter(Protocol):
    """What the order manager needs of a journal."""

    def append(self, kind: str, payload: Any, ts_ns: int | None = None) -> int:
        """Append one record durably (per the journal's policy); return its sequence."""
        ...

    def flush(self) -> int:
        """Hand buffered records to the operating system (they survive a process crash)."""
        ...


class RiskVerdict(Protocol):
    """The risk engine's answer about one order."""

    @property
    def approved(self) -> bool: ...

    @property
    def reason(self) -> Any: ...

    @property
    def detail(self) -> str: ...


class RiskGate(Protocol):
    """What the order manager needs of the risk engine."""

    def check(self, request: OrderRequest) -> RiskVerdict:
        """Approve or deny one order request."""
        ...


class OrderVenue(Protocol):
    """What the order manager routes to (the paper venue, a live venue).

    The venue registers :meth:`submit` and :meth:`cancel` as the bus endpoints
    ``topics.submit_endpoint(venue_name)`` and ``topics.cancel_endpoint(venue_name)``
    and publishes every answer (:data:`~tradekernel_sdk.orders.OrderEvent`) on
    ``topics.orders(venue_name)``. Both calls return at once; answers may come
    during the call or later.
    """

    venue_name: str

    def submit(self, request: OrderRequest) -> None:
        """Send a new order to the venue."""
        ...

    def cancel(self, request: CancelRequest) -> None:
        """Ask the venue to cancel an order's working remainder."""
        ...

    def close(self) -> None:
        """Release the bus endpoints and subscriptions."""
        ...


class OrderManager:
    """Orders, their state machine, positions, the journal and venue routing."""

    RECORD_KINDS = frozenset({"instrument", "submit", "deny", "cancel", "event"})
    """The journal record kinds this manager writes and replays."""

    def __init__(
        self,
        bus: Bus,
        *,
        journal: JournalWriter,
        risk: RiskGate,
        instruments: Callable[[str, str], Instrument | None],
        clock: Callable[[], int],
        portfolio: Portfolio | None = None,
        venues: Iterable[str] = ("paper",),
        probe: TickToOrder | None = None,
    ) -> None:
        self.probe = probe
        self.bus = bus
        self.journal = journal
        self.risk = risk
        self.instruments = instruments
        self.clock = clock
        self.portfolio = portfolio or Portfolio()
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # the orders that can still trade, oldest first
        self._instruments: dict[tuple[str, str], Instrument] = {}
        self.duplicate_submits = 0
        self.denials: dict[str, int] = {}
        self.invalid_events = 0
        self.duplicate_fills = 0
        self.unknown_events = 0
        self._venues = tuple(venues)
        self._subscriptions: list[tuple[str, Callable[[Any], None]]] = [
            (topics.orders(venue), self.on_venue_event) for venue in self._venues
        ]
        for pattern, handler in self._subscriptions:
            bus.subscribe(pattern, handler)

    def close(self) -> None:
        """Stop listening to venue events."""
        for pattern, handler in self._subscriptions:
            self.bus.unsubscribe(pattern, handler)
        self._subscriptions.clear()

    # -- commands ------------------------------------------------------------

    def submit(self, request: OrderRequest, strategy: str = "") -> Order:
        """Check, journal and route one order; a known client order id returns the known order."""
        submitted = perf_counter_ns()
        existing = self.orders.get(request.client_order_id)
        if existing is not None:
            self.duplicate_submits += 1
            log.info("duplicate submit of %s ignored", request.client_order_id)
            return existing
        if request.venue not in self._venues:
            raise ValueError(f"no route to venue {request.venue!r}")
        verdict = self.risk.check(request)
        checked = perf_counter_ns()
        if not verdict.approved:
            reason = str(getattr(verdict.reason, "value", verdict.reason))
            self.journal.append(
                "deny", [strategy, codec.encode(request), reason, verdict.detail], self.clock()
            )
            order = self._new_order(request, strategy, denied=f"{reason}: {verdict.detail}")
            self.denials[reason] = self.denials.get(reason, 0) + 1
            self._publish(order)
            # The strategy hears of a denial as of any other refusal.
            self.bus.publish(
                topics.strategy_events(strategy),
                OrderRejected(
                    request.client_order_id,
                    "",
                    request.venue,
                    request.symbol,
                    request.ts_submit,
                    f"risk: {order.reason}",
                ),
            )
            return order
        self._journal_instrument(request.venue, request.symbol)
        self.journal.append("submit", [strategy, codec.encode(request)], self.clock())
        # An order the venue may know must be on record even if the process dies now.
        self.journal.flush()
        journaled = perf_counter_ns()
        order = self._new_order(request, strategy)
        self._publish(order)  # before routing: the venue may answer synchronously
        self.bus.send(topics.submit_endpoint(request.venue), request)
        if self.probe is not None:
            self.probe.record(submitted, checked, journaled, perf_counter_ns())
        return order

    def cancel(self, client_order_id: str) -> bool:
        """Journal and route a cancel; return False when the order is unknown or not open."""
        order = self.orders.get(client_order_id)
        if order is None or not order.is_open or order.status is OrderStatus.PENDING_CANCEL:
            return False
        request = CancelRequest(client_order_id, order.venue, order.symbol, self.clock())
        self.journal.append("cancel", [codec.encode(request)], request.ts_submit)
        self.journal.flush()
        order.transition(OrderStatus.PENDING_CANCEL, request.ts_submit)
        self._publish(order)
        self.bus.send(topics.cancel_endpoint(order.venue), request)
        return True

    def cancel_all(self, venue: str | None = None, symbol: str | None = None) -> int:
        """Cancel every open order (of a venue, of a symbol); return how many were sent."""
        return sum(self.cancel(order.client_order_id) for order in self.open_orders(venue, symbol))

    # -- venue events --------------------------------------------------------

    def on_venue_event(self, event: Any) -> None:
        """Journal a venue's order event, then apply it."""
        if not isinstance(
            event,
            OrderAccepted
            | OrderRejected
            | OrderFilled
            | OrderCanceled
            | OrderExpired
            | CancelRejected,
        ):
            self.unknown_events += 1
            log.warning("ignoring unknown order event %r", event)
            return
        if event.client_order_id not in self.orders:
            self.unknown_events += 1
            log.warning("venue event for unknown order %s: %r", event.client_order_id, event)
            return
        self.journal.append("event", [codec.encode(event)], event.ts_event)
        if self._apply_event(event):
            strategy = self.orders[event.client_order_id].strategy
            self.bus.publish(topics.strategy_events(strategy), event)

    def _apply_event(self, event: Any) -> bool:
        """Apply a venue event to its order and position; return False when it was invalid."""
        order = self.orders[event.client_order_id]
        try:
            return self._apply_to(order, event)
        finally:
            if not order.is_open:
                self._open.pop(order.client_order_id, None)

    def _apply_to(self, order: Order, event: Any) -> bool:
        try:
            if isinstance(event, OrderFilled):
                if event.fill_id in order.fill_ids:
                    self.duplicate_fills += 1
                    log.warning("duplicate fill %s of %s ignored", event.fill_id, order)
                    return False
                order.apply_fill(event.quantity, event.price, event.fee, event.ts_event)
                order.fill_ids.add(event.fill_id)
                instrument = self._instruments.get((order.venue, order.symbol))
                if instrument is None:
                    instrument = self.instruments(order.venue, order.symbol)
                if instrument is not None:
                    self.portfolio.position(instrument, order.venue).apply_fill(
                        order.side, event.quantity, event.price, event.fee
                    )
            elif isinstance(event, OrderAccepted):
                if order.status is OrderStatus.PENDING_NEW:
                    order.transition(OrderStatus.NEW, event.ts_event)
                order.venue_order_id = event.venue_order_id
            elif isinstance(event, OrderRejected):
                order.reason = event.reason
                order.transition(OrderStatus.REJECTED, event.ts_event)
            elif isinstance(event, OrderCanceled):
                order.transition(OrderStatus.CANCELED, event.ts_event)
            elif isinstance(event, OrderExpired):
                order.reason = event.reason
                order.transition(OrderStatus.EXPIRED, event.ts_event)
            elif isinstance(event, CancelRejected):
                order.cancel_refused(event.ts_event)
        except InvalidTransitionError as error:
            self.invalid_events += 1
            log.error("%s (event %r)", error, event)
            return False
        self._publish(order)
        return True

    # -- recovery ------------------------------------------------------------

    def recover(self, records: Iterable[tuple[str, Any]]) -> int:
        """Rebuild orders and positions from journal ``(kind, payload)`` records; return the count.

        Nothing is routed and nothing is journaled again: the records describe
        what already happened.
        """
        count = 0
        for kind, payload in records:
            count += 1
            if kind in ("submit", "deny"):
                strategy, encoded = payload[0], payload[1]
                request = codec.decode(encoded)
                denied = f"{payload[2]}: {payload[3]}" if kind == "deny" else None
                self._new_order(request, strategy, denied=denied)
            elif kind == "instrument":
                instrument = codec.decode(payload[1])
                self._instruments[(payload[0], instrument.symbol)] = instrument
            elif kind == "cancel":
                request = codec.decode(payload[0])
                order = self.orders[request.client_order_id]
                if order.is_open and order.status is not OrderStatus.PENDING_CANCEL:
                    order.transition(OrderStatus.PENDING_CANCEL, request.ts_submit)
            elif kind == "event":
                self._apply_event(codec.decode(payload[0]))
            else:
                raise ValueError(f"unknown journal record kind {kind!r}")
        return count

    def reconcile(self, venue: str, report: Mapping[str, VenueOrderRecord]) -> dict[str, int]:
        """Bring orders on ``venue`` in line with the venue's own record, after a restart.

        Fills the venue made that the journal missed are applied (and
        journaled); orders the venue closed are closed; open orders the venue
        never received are expired. Every change goes through
        :meth:`on_venue_event`, as if the venue had just said it.
        """
        result = {"fills": 0, "closed": 0, "accepted": 0, "lost": 0, "unknown_at_kernel": 0}
        now = self.clock()
        for order in list(self.orders.values()):
            if order.venue != venue or order.status is OrderStatus.DENIED:
                continue
            cid, symbol = order.client_order_id, order.symbol
            record = report.get(cid)
            if record is None:
                if order.is_open:
                    result["lost"] += 1
                    reason = "the venue never received it (restart)"
                    self.on_venue_event(OrderExpired(cid, "", venue, symbol, now, reason))
                continue
            if order.status is OrderStatus.PENDING_NEW and record.venue_order_id:
                result["accepted"] += 1
                self.on_venue_event(OrderAccepted(cid, record.venue_order_id, venue, symbol, now))
            for fill in record.fills:
                if fill.fill_id not in order.fill_ids:
                    result["fills"] += 1
                    self.on_venue_event(fill)
            if record.closed and order.is_open:
                result["closed"] += 1
                venue_id = record.venue_order_id
                if record.status == "canceled":
                    self.on_venue_event(OrderCanceled(cid, venue_id, venue, symbol, now))
                elif record.status == "rejected":
                    self.on_venue_event(
                        OrderRejected(cid, venue_id, venue, symbol, now, record.reason)
                    )
                else:
                    self.on_venue_event(
                        OrderExpired(cid, venue_id, venue, symbol, now, record.reason)
                    )
        unknown = sorted(set(report) - set(self.orders))
        if unknown:
            result["unknown_at_kernel"] = len(unknown)
            log.error("the venue knows orders the journal does not: %s", unknown[:10])
        if any(result.values()):
            log.warning("reconciled with %s: %s", venue, result)
        return result

    # -- queries -------------------------------------------------------------

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Order]:
        """Return open orders, oldest first."""
        return [
            order
            for order in self._open.values()
            if (venue is None or order.venue == venue)
            and (symbol is None or order.symbol == symbol)
        ]

    def counts(self) -> Mapping[str, int]:
        """Return how many orders are in each status."""
        counts: dict[str, int] = {}
        for order in self.orders.values():
            counts[order.status.value] = counts.get(order.status.value, 0) + 1
        return counts

    # -- internals -----------------------------------------------------------

    def _journal_instrument(self, venue: str, symbol: str) -> None:
        key = (venue, symbol)
        if key in self._instruments:
            return
        instrument = self.instruments(venue, symbol)
        if instrument is not None:
            self.journal.append("instrument", [venue, codec.encode(instrument)], self.clock())
            self._instruments[key] = instrument

    def _new_order(self, request: OrderRequest, strategy: str, denied: str | None = None) -> Order:
        """Track a new order: PENDING_NEW, or DENIED with the reason ``denied``."""
        order = Order(
            client_order_id=request.client_order_id,
            venue=request.venue,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity,
            price=request.price,
            time_in_force=request.time_in_force,
            strategy=strategy,
            ts_created=request.ts_submit,
        )
        self.orders[request.client_order_id] = order
        if denied is None:
            self._open[request.client_order_id] = order
        else:
            order.status = OrderStatus.DENIED
            order.reason = denied
        return order

    def _publish(self, order: Order) -> None:
        self.bus.publish(topics.order_updates(order.strategy), order.snapshot())
