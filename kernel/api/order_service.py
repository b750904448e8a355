"""``OrderService``: submit, cancel and list orders through the order manager.

Orders placed here belong to the strategy ``api``. Venues are named as
clients know them (the market venue, ``binance``) and routed to the trading
venue that serves it (``paper``), as strategies' orders are.

``StreamOrderEvents`` and ``StreamFills`` follow every strategy's orders on the
bus (``oms.order.>``, ``oms.event.>``) through a bounded :class:`EventFeed`
per client: a client that falls ``max_queued`` events behind gets what was
queued, then RESOURCE_EXHAUSTED, never a silent gap.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

from kernel.api.convert import (
    VenueEvent,
    from_proto_enum,
    order_event,
    order_filled,
    order_update,
    to_proto_enum,
    units_at,
)
from kernel.api.errors import ApiError, invalid, unary
from kernel.api.feeds import MAX_QUEUED, EventFeed, FeedStats, Overflow, SharedLog
from kernel.api.parts import ApiParts
from kernel.bus import topics
from kernel.orders import Order
from kernel.risk import DenialReason
from tradekernel_sdk.orders import (
    CancelRejected,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    TimeInForce,
)
from tradekernel_sdk.proto.tradekernel.v1 import orders_pb2, orders_pb2_grpc, risk_pb2

__all__ = ["API_STRATEGY", "OrderServicer"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

API_STRATEGY = "api"
"""The strategy name of orders placed through the API."""

CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
"""What a client order id may be: 1-64 letters, digits, ``.``, ``_``, ``:``, ``-``."""

_DEFAULT_PAGE = 100
_MAX_PAGE = 1000


_VENUE_EVENTS = (
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    CancelRejected,
)

_ALL_ORDERS = topics.order_updates(">")
_ALL_EVENTS = topics.strategy_events(">")

_TOO_SLOW = (
    "the client fell {max_queued} events behind; events after the last one sent were "
    "not queued: reconnect and read ListOrders"
)


@dataclass
class _Change:
    """One change of an order and the venue event behind it, if any."""

    update: OrderUpdate
    event: VenueEvent | None = None


@dataclass
class _Fill:
    """One fill with the side and owner of its order."""

    event: OrderFilled
    side: OrderSide
    strategy: str


def _denial(order: Order) -> Any:
    """Return the proto denial reason of a DENIED order (its reason starts with the code)."""
    code = order.reason.partition(":")[0]
    try:
        return to_proto_enum(risk_pb2.DenialReason, "DENIAL_REASON", DenialReason(code))
    except ValueError:
        return risk_pb2.DENIAL_REASON_UNSPECIFIED


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    """Place, cancel and list orders."""

    def __init__(self, parts: ApiParts, *, max_queued: int = MAX_QUEUED) -> None:
        self.parts = parts
        self.max_queued = max_queued
        self.event_stats = FeedStats()
        """Counters of ``StreamOrderEvents``."""
        self._change_log: SharedLog[_Change] | None = None
        self.fill_stats = FeedStats()
        """Counters of ``StreamFills``."""

    def _message(self, order: Order) -> orders_pb2.OrderUpdate:
        return order_update(order, self.parts.instrument(order.venue, order.symbol))

    def _request(self, message: orders_pb2.OrderRequest) -> OrderRequest:
        """Return the kernel's request for ``message``; INVALID_ARGUMENT names a bad field."""
        client_order_id = message.client_order_id
        if not client_order_id:
            raise invalid("order.client_order_id", "required")
        if not CLIENT_ORDER_ID.fullmatch(client_order_id):
            raise invalid(
                "order.client_order_id",
                "must be 1-64 letters, digits, '.', '_', ':' or '-', starting alphanumeric",
            )
        if not message.venue:
            raise invalid("order.venue", "required")
        if not message.symbol:
            raise invalid("order.symbol", "required")
        instrument = self.parts.instrument(message.venue, message.symbol)
        if instrument is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND,
                f"order.symbol: no instrument {message.symbol!r} on {message.venue!r}",
            )
        side = from_proto_enum(
            orders_pb2.OrderSide, "ORDER_SIDE", message.side, OrderSide, "order.side"
        )
        order_type = from_proto_enum(
            orders_pb2.OrderType, "ORDER_TYPE", message.order_type, OrderType, "order.order_type"
        )
        time_in_force = TimeInForce.GTC
        if message.time_in_force != orders_pb2.TIME_IN_FORCE_UNSPECIFIED:
            time_in_force = from_proto_enum(
                orders_pb2.TimeInForce,
                "TIME_IN_FORCE",
                message.time_in_force,
                TimeInForce,
                "order.time_in_force",
            )
        if not message.HasField("quantity"):
            raise invalid("order.quantity", "required")
        quantity = units_at(message.quantity, instrument.size_precision, "order.quantity")
        if quantity <= 0:
            raise invalid("order.quantity", "must be positive")
        price: int | None = None
        if order_type is OrderType.LIMIT:
            if not message.HasField("price"):
                raise invalid("order.price", "required for a limit order")
            price = units_at(message.price, instrument.price_precision, "order.price")
            if price <= 0:
                raise invalid("order.price", "must be positive")
        elif message.HasField("price"):
            raise invalid("order.price", "must be unset for a market order")
        return OrderRequest(
            client_order_id=client_order_id,
            venue=self.parts.venues.trading_venue(message.venue),
            symbol=message.symbol,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            ts_submit=message.ts_submit or time.time_ns(),
        )

    @unary
    async def SubmitOrder(
        self, request: orders_pb2.SubmitOrderRequest, context: Context
    ) -> orders_pb2.SubmitOrderResponse:
        """Submit an order through the risk checks; a known client order id submits nothing."""
        if not request.HasField("order"):
            raise invalid("order", "required")
        order_request = self._request(request.order)
        manager = self.parts.order_manager()
        known = manager.orders.get(order_request.client_order_id)
        if known is not None:
            same = (
                known.venue,
                known.symbol,
                known.side,
                known.order_type,
                known.quantity,
                known.price,
                known.time_in_force,
            ) == (
                order_request.venue,
                order_request.symbol,
                order_request.side,
                order_request.order_type,
                order_request.quantity,
                order_request.price,
                order_request.time_in_force,
            )
            if not same:
                raise ApiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    "order.client_order_id: already used for a different order",
                )
            return orders_pb2.SubmitOrderResponse(
                order=self._message(known), denial_reason=_denial(known), replayed=True
            )
        try:
            order = manager.submit(order_request, API_STRATEGY)
        except ValueError as error:
            raise invalid("order.venue", str(error)) from None
        return orders_pb2.SubmitOrderResponse(
            order=self._message(order), denial_reason=_denial(order)
        )

    @unary
    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: Context
    ) -> orders_pb2.CancelOrderResponse:
        """Ask for an order's working remainder to be cancelled; NOT_FOUND for unknown ids."""
        if not request.client_order_id:
            raise invalid("client_order_id", "required")
        manager = self.parts.order_manager()
        order = manager.orders.get(request.client_order_id)
        if order is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND, f"client_order_id: no order {request.client_order_id!r}"
            )
        manager.cancel(order.client_order_id)  # False when nothing is working: returned as is
        return orders_pb2.CancelOrderResponse(order=self._message(order))

    @unary
    async def CancelAllOrders(
        self, request: orders_pb2.CancelAllOrdersRequest, context: Context
    ) -> orders_pb2.CancelAllOrdersResponse:
        """Ask for every working order matching the filter to be cancelled."""
        manager = self.parts.order_manager()
        response = orders_pb2.CancelAllOrdersResponse()
        for order in manager.open_orders():
            if self._matches(order, request.filter) and manager.cancel(order.client_order_id):
                response.client_order_ids.append(order.client_order_id)
        return response

    @unary
    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: Context
    ) -> orders_pb2.ListOrdersResponse:
        """List orders, newest first, a page at a time."""
        size = request.page_size or _DEFAULT_PAGE
        size = min(size, _MAX_PAGE)
        start = 0
        if request.page_token:
            if not request.page_token.isascii() or not request.page_token.isdigit():
                raise invalid("page_token", "not a token this server issued")
            start = int(request.page_token)
        manager = self.parts.order_manager()
        matching = [
            order
            for order in reversed(manager.orders.values())
            if self._matches(order, request.filter) and (order.is_open or not request.open_only)
        ]
        page = matching[start : start + size]
        response = orders_pb2.ListOrdersResponse(orders=[self._message(order) for order in page])
        if start + size < len(matching):
            response.next_page_token = str(start + size)
        return response

    def _matches(self, order: Order | OrderUpdate, selector: orders_pb2.OrderFilter) -> bool:
        venue = selector.venue
        if venue and order.venue not in (venue, self.parts.venues.trading_venue(venue)):
            return False
        if selector.symbol and order.symbol != selector.symbol:
            return False
        return not selector.strategy or order.strategy == selector.strategy

    async def StreamOrderEvents(
        self, request: orders_pb2.StreamOrderEventsRequest, context: Context
    ) -> AsyncIterator[orders_pb2.StreamOrderEventsResponse]:
        """Stream every change of matching orders with the venue event behind it."""
        try:
            self.parts.order_manager()
        except ApiError as error:
            await context.abort(error.code, error.message)
        selector = request.filter
        with self._changes().reader() as reader:
            while True:
                for change in await reader.take():
                    if not self._matches(change.update, selector):
                        continue
                    instrument = self.parts.instrument(change.update.venue, change.update.symbol)
                    message = orders_pb2.StreamOrderEventsResponse(
                        order=order_update(change.update, instrument)
                    )
                    if change.event is not None:
                        message.event.CopyFrom(order_event(change.event, instrument))
                    self.event_stats.sent += 1
                    yield message
                if reader.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        _TOO_SLOW.format(max_queued=self.max_queued),
                    )

    def _changes(self) -> SharedLog[_Change]:
        """Return the log every order-event stream reads, made on first use.

        One bus subscription for all streams: the order manager publishes each
        change once per order, not once per connected client.
        """
        if self._change_log is None:
            log: SharedLog[_Change] = SharedLog(
                self.parts.bus, (), self.event_stats, max_behind=self.max_queued
            )

            def on_update(update: OrderUpdate) -> None:
                if isinstance(update, OrderUpdate):
                    log.append(_Change(update))

            def on_event(event: Any) -> None:
                # The manager publishes an order's update, then at once the venue event
                # that caused it; a DENIED order's rejection is the kernel's own notice.
                last = log.last()
                if (
                    isinstance(event, _VENUE_EVENTS)
                    and last is not None
                    and last.event is None
                    and last.update.client_order_id == event.client_order_id
                    and last.update.status is not OrderStatus.DENIED
                ):
                    last.event = event

            log.subscriptions = [(_ALL_ORDERS, on_update), (_ALL_EVENTS, on_event)]
            self._change_log = log
        return self._change_log

    async def StreamFills(
        self, request: orders_pb2.StreamFillsRequest, context: Context
    ) -> AsyncIterator[orders_pb2.StreamFillsResponse]:
        """Stream the fills of matching orders."""
        try:
            manager = self.parts.order_manager()
        except ApiError as error:
            await context.abort(error.code, error.message)
        selector = request.filter
        feed: EventFeed[_Fill] = EventFeed(
            self.fill_stats, max_queued=self.max_queued, overflow=Overflow.FAIL
        )

        def on_event(event: Any) -> None:
            if not isinstance(event, OrderFilled):
                return
            order = manager.orders.get(event.client_order_id)
            if order is not None and self._matches(order, selector):
                feed.push(_Fill(event, order.side, order.strategy))

        with feed.attached(self.parts.bus, [(_ALL_EVENTS, on_event)]):
            while True:
                for fill in await feed.take():
                    instrument = self.parts.instrument(fill.event.venue, fill.event.symbol)
                    self.fill_stats.sent += 1
                    yield orders_pb2.StreamFillsResponse(
                        fill=order_filled(fill.event, instrument),
                        side=to_proto_enum(orders_pb2.OrderSide, "ORDER_SIDE", fill.side),
                        strategy=fill.strategy,
                    )
                if feed.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        _TOO_SLOW.format(max_queued=self.max_queued),
                    )
