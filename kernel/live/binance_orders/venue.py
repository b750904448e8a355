"""The Binance order venue: REST answers, the user-data stream and reconciliation as order events.

The venue registers ``<venue>.submit`` and ``<venue>.cancel`` on the bus and
publishes what Binance answers on ``events.order.<venue>``
(:class:`~kernel.orders.manager.OrderVenue`). Orders travel over signed REST;
what happens to them afterwards arrives on the user-data stream. The rules
come from the Binance spot API documentation (see ``docs/venues.md``, "Order
entry: Binance"):

* **Signing.** ``signature`` is the hex HMAC-SHA256, keyed by the secret, of
  the exact query string sent; the key goes in ``X-MBX-APIKEY``. Trade keys
  place and cancel, read keys query and keep the user-data stream. Keys, the
  secret and signatures are never logged; the listen key is registered with
  the log redactor.
* **Timing.** ``timestamp`` is the local clock plus the measured offset to the
  venue's clock (``GET /api/v3/time``, taken at the midpoint of the round
  trip), with ``recvWindow``. The offset is measured at start, periodically,
  and after a ``-1021`` answer, after which the request is sent once more.
* **Limits.** Request weight per endpoint, the order counts of 10 s and one
  day, the venue's ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-*`` echoes
  taken as the truth, 429 and 418 answers block every call for ``Retry-After``;
  a rate-limited order is sent again once if the wait is short, else rejected.
* **Unknown outcomes.** A timeout, a dropped connection, a 5xx answer or the
  codes ``-1006`` / ``-1007`` ("execution status unknown") mean the order may
  or may not exist: it is looked up by its client order id rather than
  guessed rejected.
* **Events.** ``executionReport`` execution types map onto order events; a
  fill is identified by its trade id, so the same trade from the REST answer,
  the stream and a trade query counts once. Commission is converted exactly
  into the quote currency's fee units (base-asset commission is valued at the
  fill price, rounded up); commission in a third asset is counted, not valued.
* **Reconciliation** after every (re)connect of the user-data stream: every
  order the kernel has open is looked up, fills it missed are fetched from the
  trade list, orders the venue no longer knows are expired, and open venue
  orders the kernel never placed are reported, never adopted. Balances are
  compared with the positions the kernel's fills add up to: a change in a
  traded base asset that the fills (and commission paid in it) do not explain
  is reported as drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Protocol

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from kernel.bus import Bus, topics
from kernel.live.backoff import Backoff
from kernel.live.binance_orders.rest import (
    SPOT,
    BinanceRest,
    OrderApi,
    OutcomeUnknownError,
    VenueError,
)
from kernel.live.credentials import CredentialsError, VenueCredentials
from kernel.live.tracked_orders import (
    ClosingKind,
    TrackedOrder,
    accepting_event,
    closing_event,
    filling_event,
    keep_connected,
)
from kernel.logs import register_secret
from tradekernel_sdk.fixedpoint import FixedPointError, from_fixed, to_fixed
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    CancelRejected,
    CancelRequest,
    Liquidity,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.types import Instrument

__all__ = [
    "BinanceOrderEntry",
    "KernelOrders",
    "Positions",
    "ReconcileReport",
    "ResponseType",
    "commission_in_quote",
    "venue_client_id",
]

log = logging.getLogger(__name__)

ResponseType = Literal["ACK", "RESULT", "FULL"]

_HEALTHY_AFTER_S = 5.0
_ASSET_PRECISION = 8  # spot balances and commissions are written with 8 decimals
_NO_SUCH_ORDER = -2013
_NO_SUCH_LISTEN_KEY = -1125
_TIME_IN_FORCE = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
_EXPIRY_REASONS = {
    "EXPIRED": "expired by the venue (time in force, market liquidity or maintenance)",
    "EXPIRED_IN_MATCH": "expired in match by self-trade prevention",
    "TRADE_PREVENTION": "expired by self-trade prevention",
}
_CLOSED_STATUSES = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"})


def commission_in_quote(
    commission: str, asset: str, price: int, instrument: Instrument
) -> int | None:
    """Return a commission in the quote currency's fee units, or None when it cannot be valued.

    Quote-asset commission converts exactly; base-asset commission is valued at
    the fill price (fixed-point at the instrument's price precision) and
    rounded up, never kinder than the venue.
    """
    if asset == instrument.quote:
        return to_fixed(commission, FEE_PRECISION)
    if asset == instrument.base:
        value = Fraction(commission) * Fraction(price, 10**instrument.price_precision)
        units = value * 10**FEE_PRECISION
        rounded_up: int = -((-units.numerator) // units.denominator)
        return rounded_up
    return None


class KernelOrder(Protocol):
    """The kernel's view of an order, as reconciliation reads it (:class:`~kernel.orders.Order`)."""

    client_order_id: str
    venue: str
    symbol: str
    quantity: int
    filled_quantity: int
    venue_order_id: str
    fill_ids: set[str]
    status: OrderStatus


class Positions(Protocol):
    """The kernel's positions (a :class:`~kernel.portfolio.Portfolio`)."""

    def quantity(self, venue: str, symbol: str) -> int:
        """Return the signed position size of ``symbol`` on ``venue``."""
        ...


class KernelOrders(Protocol):
    """The kernel's orders and positions, as the order manager keeps them."""

    @property
    def portfolio(self) -> Positions:
        """The positions the kernel's fills add up to."""
        ...

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Any]:
        """Return the orders still open, oldest first."""
        ...


_CLIENT_ID_RULE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")


def venue_client_id(client_order_id: str) -> str:
    """Return the client order id sent to Binance for the kernel's ``client_order_id``.

    The venue takes 1 to 36 of ``. A-Z a-z 0-9 : / _ -``; an id outside that
    rule is sent as a digest of itself, the same in every process, so a
    restarted kernel finds its orders again.
    """
    if _CLIENT_ID_RULE.fullmatch(client_order_id):
        return client_order_id
    return "tk-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:32]


@dataclass
class ReconcileReport:
    """What one reconciliation found."""

    checked: int = 0
    fills: int = 0
    closed: int = 0
    lost: int = 0
    unknown_at_kernel: list[str] = field(default_factory=list)
    """Client order ids of orders open at the venue that the kernel does not have open."""
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Asset → (free, locked) as the venue reports them."""
    balance_drift: dict[str, int] = field(default_factory=dict)
    """Base asset → change (in units of 10**-8) the kernel's fills do not explain since
    the first reconciliation: a trade by hand, a deposit or withdrawal, a missed fill."""
    positions: dict[str, int] = field(default_factory=dict)
    """Futures: symbol → signed position at the venue (fixed point)."""
    position_differences: dict[str, int] = field(default_factory=dict)
    """Futures: symbol → venue position minus the kernel's, where they differ."""


class BinanceOrderEntry:
    """Orders on one Binance market through REST and the user-data stream.

    ``instruments`` returns an instrument by symbol (the market feed's lookup).
    After :meth:`start`, the order manager's ``<venue>.submit`` and
    ``<venue>.cancel`` reach the venue; ``orders`` (the order manager) lets
    reconciliation see the kernel's open orders after every stream (re)connect.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        credentials: VenueCredentials,
        instruments: Callable[[str], Instrument | None],
        api: OrderApi = SPOT,
        venue_name: str = "binance",
        rest_url: str | None = None,
        ws_url: str | None = None,
        response_type: ResponseType = "FULL",
        recv_window_ms: int = 5000,
        clock_resync_s: float = 300.0,
        keepalive_s: float = 1800.0,
        max_retry_wait_s: float = 5.0,
        backoff: Backoff | None = None,
        orders: KernelOrders | None = None,
        lookup_delay_s: float = 1.0,
    ) -> None:
        self.venue_name = venue_name
        self.api = api
        self.rest = BinanceRest(
            api,
            credentials,
            rest_url=rest_url,
            recv_window_ms=recv_window_ms,
            max_retry_wait_s=max_retry_wait_s,
        )
        self.ws_url = (ws_url or api.ws_url).rstrip("/")
        self.credentials = credentials
        # Futures answer ACK or RESULT only; their fills come from the stream and trade list.
        self.response_type: ResponseType = (
            "RESULT" if api.futures and response_type == "FULL" else response_type
        )
        self.clock_resync_s = clock_resync_s
        self.lookup_delay_s = lookup_delay_s
        """After an unknown outcome, wait this long before looking the order up, and as
        long again before believing a "does not exist": the request may still be on its way."""
        self.keepalive_s = keepalive_s
        self.backoff = backoff if backoff is not None else Backoff()
        self.orders = orders
        self.stream_connected = asyncio.Event()
        self.listen_keys = 0
        """Listen keys obtained (a new one after each expiry)."""
        self.keepalives = 0
        self.stream_connects = 0
        self.duplicate_fills = 0
        self.unvalued_commissions = 0
        self.unknown_orders: set[str] = set()
        """Client order ids of open venue orders the kernel never placed."""
        self.reconciliations: list[ReconcileReport] = []
        self._bus = bus
        self._instruments = instruments
        self._topic = topics.orders(venue_name)
        self._tracked: dict[str, TrackedOrder] = {}  # by the kernel's client order id
        self._kernel_ids: dict[str, str] = {}  # the venue's client order id → the kernel's
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._listen_key = ""
        self._socket: Any = None
        # Commission paid per asset (10**-8 units) and, per base asset, the balance the
        # kernel's positions do not account for at the first reconciliation.
        self._commissions_paid: dict[str, int] = {}
        self._balance_baseline: dict[str, int] = {}
        self._endpoints = [topics.submit_endpoint(venue_name), topics.cancel_endpoint(venue_name)]
        bus.register_endpoint(self._endpoints[0], self.submit)
        bus.register_endpoint(self._endpoints[1], self.cancel)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Measure the clock, then keep the user-data stream (and reconciliation) running.

        Raises :class:`~kernel.live.credentials.CredentialsError` without read keys.
        """
        self.credentials.for_reading()
        await self.rest.open()
        await self.rest.sync_clock()
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="binance-orders")

    async def stop(self) -> None:
        """Stop the stream and background work and close the HTTP session.

        The listen key is left to expire: the venue gives one key per account,
        so closing it would end the stream of any other process on the account.
        """
        self._stopping.set()
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listen_key = ""
        await self.rest.close()
        self.close()

    def close(self) -> None:
        """Release the bus endpoints."""
        for name in self._endpoints:
            self._bus.deregister_endpoint(name)
        self._endpoints = []

    # -- the order manager's endpoints -----------------------------------------

    def submit(self, request: OrderRequest) -> None:
        """Send a new order (answers arrive as order events)."""
        tracked = TrackedOrder(request.client_order_id, request.symbol, request.quantity)
        self._track(tracked)
        if not self.rest.is_open:
            self._close(tracked, OrderRejected, "the binance venue is not started")
            return
        try:
            self.credentials.for_trading()
        except CredentialsError as error:
            self._close(tracked, OrderRejected, str(error))  # names the variables, not values
            return
        tracked.placing = self._spawn(self._place(tracked, request))

    def cancel(self, request: CancelRequest) -> None:
        """Cancel an order's working remainder (answers arrive as order events)."""
        self._spawn(self._cancel(request))

    # -- placing and cancelling ------------------------------------------------

    def _order_params(self, request: OrderRequest, instrument: Instrument) -> dict[str, str]:
        params = {
            "symbol": request.symbol,
            "side": "BUY" if request.side is OrderSide.BUY else "SELL",
            "quantity": _decimal_text(request.quantity, instrument.size_precision),
            "newClientOrderId": venue_client_id(request.client_order_id),
            "newOrderRespType": self.response_type,
        }
        if request.order_type is OrderType.MARKET:
            params["type"] = "MARKET"
            return params
        if request.price is None:
            raise ValueError("a limit order needs a price")
        params["price"] = _decimal_text(request.price, instrument.price_precision)
        if request.time_in_force is TimeInForce.POST_ONLY and self.api.futures:
            params["type"], params["timeInForce"] = "LIMIT", "GTX"
        elif request.time_in_force is TimeInForce.POST_ONLY:
            params["type"] = "LIMIT_MAKER"
        else:
            params["type"] = "LIMIT"
            params["timeInForce"] = _TIME_IN_FORCE[request.time_in_force]
        return params

    async def _place(self, tracked: TrackedOrder, request: OrderRequest) -> None:
        instrument = self._instruments(request.symbol)
        if instrument is None:
            self._close(tracked, OrderRejected, "unknown instrument at the venue adapter")
            return
        try:
            params = self._order_params(request, instrument)
        except ValueError as error:
            self._close(tracked, OrderRejected, str(error))
            return
        keys = self.credentials.for_trading()
        for attempt in (1, 2):
            try:
                body = await self.rest.call(
                    "POST", self.api.order_path, params, keys=keys, signed=True, new_order=True
                )
            except VenueError as error:
                if (
                    error.rate_limited
                    and attempt == 1
                    and error.retry_after_s <= self.rest.max_retry_wait_s
                ):
                    log.warning(
                        "order %s rate limited: sending again in %.0f s",
                        request.client_order_id,
                        error.retry_after_s,
                    )
                    await self._wait_out_rate_limit()
                    continue
                log.warning("order %s refused: %s", request.client_order_id, error)
                self._close(tracked, OrderRejected, str(error))
                return
            except OutcomeUnknownError as unknown:
                log.warning(
                    "order %s: outcome unknown (%s), looking it up",
                    tracked.client_order_id,
                    unknown,
                )
                await self._resolve_unknown(tracked)
                return
            await self._apply_order_answer(tracked, body, instrument)
            return

    async def _resolve_unknown(self, tracked: TrackedOrder) -> None:
        """Look up an order whose request may or may not have reached the venue."""
        for _ in range(2):
            await asyncio.sleep(self.lookup_delay_s)
            known = await self._resolve(tracked, believe_missing=False)
            if known is not False:
                return
        self._close(tracked, OrderExpired, "the venue does not know the order")

    async def _cancel(self, request: CancelRequest) -> None:
        tracked = self._known(request.client_order_id)
        if tracked is not None and tracked.placing is not None:
            # The order must exist before it can go; how placing ended is its own business.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(tracked.placing)
        if tracked is not None and tracked.closed:
            self._publish(
                CancelRejected(
                    request.client_order_id,
                    tracked.venue_order_id,
                    self.venue_name,
                    request.symbol,
                    time.time_ns(),
                    "the order is no longer working",
                )
            )
            return
        params = {
            "symbol": request.symbol,
            "origClientOrderId": venue_client_id(request.client_order_id),
        }
        keys = self.credentials.for_trading()
        for attempt in (1, 2):
            try:
                body = await self.rest.call(
                    "DELETE", self.api.order_path, params, keys=keys, signed=True
                )
            except VenueError as error:
                if (
                    error.rate_limited
                    and attempt == 1
                    and (error.retry_after_s <= self.rest.max_retry_wait_s)
                ):
                    await self._wait_out_rate_limit()
                    continue
                self._publish(
                    CancelRejected(
                        request.client_order_id,
                        tracked.venue_order_id if tracked else "",
                        self.venue_name,
                        request.symbol,
                        time.time_ns(),
                        str(error),
                    )
                )
                return
            except OutcomeUnknownError:
                if tracked is not None:
                    await self._resolve_unknown(tracked)
                return
            if tracked is None:
                return
            instrument = self._instruments(request.symbol)
            if instrument is not None:
                await self._apply_order_answer(tracked, body, instrument)
            return

    async def _wait_out_rate_limit(self) -> None:
        delays = [limit.delay_for(1) for limit in self.rest.order_counts.values()]
        delay = max(self.rest.weights.delay_for(1), *delays)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _resolve(self, tracked: TrackedOrder, *, believe_missing: bool = True) -> bool | None:
        """Find out what became of an order; return whether the venue knows it (None: unclear).

        An order the venue does not know is expired, if ``believe_missing``.
        """
        try:
            body = await self.rest.call(
                "GET",
                self.api.order_path,
                {"symbol": tracked.symbol, "origClientOrderId": tracked.venue_client_id},
                keys=self.credentials.for_reading(),
                signed=True,
            )
        except VenueError as error:
            if error.code == _NO_SUCH_ORDER:
                if believe_missing:
                    self._close(tracked, OrderExpired, "the venue does not know the order")
                return False
            log.warning("looking up %s failed: %s", tracked.client_order_id, error)
            return None
        except OutcomeUnknownError as unknown:
            log.warning("looking up %s failed: %s", tracked.client_order_id, unknown)
            return None
        instrument = self._instruments(tracked.symbol)
        if instrument is not None:
            await self._apply_order_answer(tracked, body, instrument)
        return True

    # -- venue answers → order events --------------------------------------------

    async def _apply_order_answer(
        self, tracked: TrackedOrder, body: Mapping[str, Any], instrument: Instrument
    ) -> None:
        """Apply an order as a REST answer describes it (new order, cancel, query)."""
        order_id = body.get("orderId")
        if order_id is not None:
            self._accept(tracked, str(order_id), _ns(body.get("transactTime")))
        taker = Liquidity.TAKER  # fills in a new order's answer took liquidity
        for fill in body.get("fills", ()):
            price = to_fixed(fill["price"], instrument.price_precision)
            self._fill(
                tracked,
                instrument,
                trade_id=str(fill["tradeId"]),
                price=price,
                quantity=to_fixed(fill["qty"], instrument.size_precision),
                commission=fill["commission"],
                commission_asset=fill["commissionAsset"],
                liquidity=taker,
                ts_ns=_ns(body.get("transactTime")),
            )
        status = body.get("status")
        executed_text = body.get("executedQty")
        if executed_text is not None:
            executed = to_fixed(executed_text, instrument.size_precision)
            if executed > tracked.filled:
                await self._fetch_trades(tracked, instrument)
        if status in _CLOSED_STATUSES:
            self._close_as(tracked, status)

    async def _fetch_trades(self, tracked: TrackedOrder, instrument: Instrument) -> int:
        """Apply the order's trades the kernel has not seen; return how many."""
        if not tracked.venue_order_id:
            return 0
        trades = await self.rest.call(
            "GET",
            self.api.trades_path,
            {"symbol": tracked.symbol, "orderId": tracked.venue_order_id},
            keys=self.credentials.for_reading(),
            signed=True,
        )
        applied = 0
        for trade in trades:
            applied += self._fill(
                tracked,
                instrument,
                trade_id=str(trade["id"]),
                price=to_fixed(trade["price"], instrument.price_precision),
                quantity=to_fixed(trade["qty"], instrument.size_precision),
                commission=trade["commission"],
                commission_asset=trade["commissionAsset"],
                # Spot's trade list says isMaker, USD-M's says maker.
                liquidity=(
                    Liquidity.MAKER if trade.get("isMaker", trade.get("maker")) else Liquidity.TAKER
                ),
                ts_ns=_ns(trade.get("time")),
            )
        return applied

    def on_user_message(self, payload: bytes) -> None:
        """Handle one user-data stream message."""
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("binance user data: a message that is not JSON (%d bytes)", len(payload))
            return
        if not isinstance(message, dict):
            return
        data = message.get("data", message)  # /stream wraps events, /ws does not
        kind = data.get("e") if isinstance(data, dict) else None
        if kind in ("executionReport", "ORDER_TRADE_UPDATE"):
            try:
                # USD-M nests the order under "o" with the same field letters as spot's report.
                report = data if kind == "executionReport" else {"E": data.get("E"), **data["o"]}
                self._on_execution_report(report)
            except (KeyError, TypeError, ValueError, FixedPointError) as error:
                log.error("binance %s not understood: %r", kind, error)
        elif kind == "listenKeyExpired":
            log.warning("binance listen key expired: reconnecting with a new one")
            self._spawn(self._drop_stream())

    def _on_execution_report(self, report: Mapping[str, Any]) -> None:
        # Cancels carry the cancel's own id in c and the order's in C.
        tracked = self._known_by_venue_id(report["c"]) or self._known_by_venue_id(
            report.get("C") or ""
        )
        if tracked is None:
            return  # an order this kernel did not place (reconciliation reports those)
        instrument = self._instruments(tracked.symbol)
        if instrument is None:
            return
        ts_ns = _ns(report.get("E"))
        execution = report["x"]
        self._accept(tracked, str(report["i"]), ts_ns)
        if execution == "TRADE":
            self._fill(
                tracked,
                instrument,
                trade_id=str(report["t"]),
                price=to_fixed(report["L"], instrument.price_precision),
                quantity=to_fixed(report["l"], instrument.size_precision),
                commission=report["n"],
                commission_asset=report["N"] or instrument.quote,
                liquidity=Liquidity.MAKER if report.get("m") else Liquidity.TAKER,
                ts_ns=_ns(report.get("T")) or ts_ns,
            )
            return
        status = report["X"]
        if status not in _CLOSED_STATUSES and execution not in _EXPIRY_REASONS:
            return
        cumulative = to_fixed(report["z"], instrument.size_precision)
        if cumulative > tracked.filled:
            # Trades this stream never delivered: fetch them before the order closes.
            self._spawn(self._catch_up_and_close(tracked, instrument, status))
        else:
            self._close_as(tracked, execution if execution in _EXPIRY_REASONS else status)

    async def _catch_up_and_close(
        self, tracked: TrackedOrder, instrument: Instrument, status: str
    ) -> None:
        await self._fetch_trades(tracked, instrument)
        self._close_as(tracked, status)

    def _accept(self, tracked: TrackedOrder, venue_order_id: str, ts_ns: int) -> None:
        event = accepting_event(tracked, venue_order_id, self.venue_name, ts_ns)
        if event is not None:
            self._publish(event)

    def _fill(
        self,
        tracked: TrackedOrder,
        instrument: Instrument,
        *,
        trade_id: str,
        price: int,
        quantity: int,
        commission: str,
        commission_asset: str,
        liquidity: Liquidity,
        ts_ns: int,
    ) -> int:
        """Publish one fill unless its trade was seen; return 1 when published."""
        if trade_id in tracked.trade_ids:
            self.duplicate_fills += 1
            return 0
        fee = commission_in_quote(commission, commission_asset, price, instrument)
        if fee is None:
            self.unvalued_commissions += 1
            log.warning(
                "commission of trade %s is in %s, which has no quote value here: booked as 0",
                trade_id,
                commission_asset,
            )
            fee = 0
        with contextlib.suppress(FixedPointError):
            paid = to_fixed(commission, _ASSET_PRECISION)
            self._commissions_paid[commission_asset] = (
                self._commissions_paid.get(commission_asset, 0) + paid
            )
        self._publish(
            filling_event(
                tracked,
                self.venue_name,
                trade_id=trade_id,
                price=price,
                quantity=quantity,
                fee=fee,
                liquidity=liquidity,
                ts_ns=ts_ns,
            )
        )
        return 1

    def _close_as(self, tracked: TrackedOrder, status: str) -> None:
        if status == "CANCELED":
            self._close(tracked, OrderCanceled, "")
        elif status in _EXPIRY_REASONS:
            self._close(tracked, OrderExpired, _EXPIRY_REASONS[status])
        elif status == "REJECTED":
            # Only a never-accepted order can be rejected; afterwards the venue ended it.
            kind: type[OrderRejected] | type[OrderExpired] = (
                OrderExpired if tracked.accepted else OrderRejected
            )
            self._close(tracked, kind, "rejected by the venue")
        elif status == "FILLED" and not tracked.closed:
            log.error(
                "%s is FILLED at the venue but its fills do not add up", tracked.client_order_id
            )

    def _close(self, tracked: TrackedOrder, kind: ClosingKind, reason: str) -> None:
        event = closing_event(tracked, kind, self.venue_name, reason)
        if event is not None:
            self._publish(event)

    def _publish(self, event: OrderEvent) -> None:
        self._bus.publish(self._topic, event)

    # -- the user-data stream ----------------------------------------------------

    async def _run(self) -> None:
        """Keep the stream connected: a listen key, the socket, keepalives, reconciliation."""
        await keep_connected(
            self._stream_once,
            self._resync_clock,
            stopping=self._stopping,
            backoff=self.backoff,
            what="binance user data stream",
            log=log,
        )

    async def _stream_once(self) -> bool:
        try:
            body = await self.rest.call(
                "POST", self.api.listen_key_path, keys=self.credentials.for_reading()
            )
        except (VenueError, OutcomeUnknownError) as error:
            log.warning("binance listen key: %s", error)
            return False
        key = str(body["listenKey"])
        if key != self._listen_key:
            register_secret(key)
            self._listen_key = key
            self.listen_keys += 1
        try:
            async with connect(f"{self.ws_url}/ws/{key}", open_timeout=10, proxy=None) as socket:
                self.stream_connects += 1
                self._socket = socket
                opened = time.monotonic()
                self.stream_connected.set()
                keepalive = asyncio.get_running_loop().create_task(self._keepalive(socket))
                # Connected first, then reconciled: nothing falls between the two.
                reconcile = asyncio.get_running_loop().create_task(self._reconcile_logged())
                try:
                    async for message in socket:
                        payload = message.encode() if isinstance(message, str) else message
                        self.on_user_message(payload)
                finally:
                    self._socket = None
                    self.stream_connected.clear()
                    for task in (keepalive, reconcile):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        except (OSError, TimeoutError, WebSocketException) as exc:
            log.warning("binance user data stream: %s", type(exc).__name__)
            return False
        log.info("binance user data stream closed")
        # A connection that lasted counts as healthy: the next attempt starts from base delay.
        return time.monotonic() - opened >= _HEALTHY_AFTER_S

    async def _keepalive(self, socket: Any) -> None:
        """Extend the listen key every ``keepalive_s``; a lost key means a new stream."""
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                # Futures extend the account's one key and take no parameter.
                params = {} if self.api.futures else {"listenKey": self._listen_key}
                await self.rest.call(
                    "PUT", self.api.listen_key_path, params, keys=self.credentials.for_reading()
                )
                self.keepalives += 1
            except VenueError as error:
                if error.code == _NO_SUCH_LISTEN_KEY:
                    log.warning("binance listen key expired: reconnecting with a new one")
                    await self._drop_stream()
                    return
                log.warning("binance listen key keepalive: %s", error)
            except OutcomeUnknownError as unknown:
                log.warning("binance listen key keepalive: %s", unknown)

    async def _drop_stream(self) -> None:
        """End the current connection; the stream loop gets a new listen key and reconnects."""
        self._listen_key = ""
        socket = self._socket
        if socket is not None:
            await socket.close()

    async def _resync_clock(self) -> None:
        while True:
            await asyncio.sleep(self.clock_resync_s)
            with contextlib.suppress(VenueError, OutcomeUnknownError):
                await self.rest.sync_clock()

    # -- reconciliation ----------------------------------------------------------

    async def reconcile(self) -> ReconcileReport:
        """Compare the venue's orders and balances with the kernel's, and settle the difference."""
        report = ReconcileReport()
        keys = self.credentials.for_reading()
        if self.orders is not None:
            for order in self.orders.open_orders(self.venue_name):
                tracked = self._adopt(order)
                if tracked.placing is not None and not tracked.placing.done():
                    continue  # its own answer is on the way
                report.checked += 1
                fills_before, closed_before = tracked.filled, tracked.closed
                known = await self._reconcile_order(tracked)
                report.fills += tracked.filled != fills_before
                if known is False:
                    report.lost += 1
                elif tracked.closed and not closed_before:
                    report.closed += 1
        venue_open = await self.rest.call("GET", self.api.open_orders_path, keys=keys, signed=True)
        for entry in venue_open:
            venue_cid = str(entry["clientOrderId"])
            mine = self._tracked.get(self._kernel_ids.get(venue_cid, ""))
            if mine is None or mine.closed:
                report.unknown_at_kernel.append(venue_cid)
        if report.unknown_at_kernel:
            self.unknown_orders.update(report.unknown_at_kernel)
            log.error(
                "binance has open orders this kernel never placed (not adopted): %s",
                sorted(report.unknown_at_kernel)[:10],
            )
        if self.api.positions_path:
            await self._compare_positions(report)
        if self.api.account_path:
            await self._compare_balances(report)
        self.reconciliations.append(report)
        log.info(
            "reconciled with binance: %d orders checked, %d with new fills, %d closed, "
            "%d lost, %d unknown at the kernel",
            report.checked,
            report.fills,
            report.closed,
            report.lost,
            len(report.unknown_at_kernel),
        )
        return report

    async def _compare_positions(self, report: ReconcileReport) -> None:
        """Futures: each symbol's position at the venue against the kernel's."""
        keys = self.credentials.for_reading()
        positions = await self.rest.call("GET", self.api.positions_path, keys=keys, signed=True)
        for entry in positions:
            symbol = str(entry["symbol"])
            instrument = self._instruments(symbol)
            if instrument is None:
                continue
            venue_quantity = _signed_fixed(str(entry["positionAmt"]), instrument.size_precision)
            report.positions[symbol] = venue_quantity
            kernel_quantity = (
                self.orders.portfolio.quantity(self.venue_name, symbol) if self.orders else 0
            )
            if venue_quantity != kernel_quantity:
                report.position_differences[symbol] = venue_quantity - kernel_quantity
        if report.position_differences:
            log.warning(
                "binance positions differ from the journal's (venue minus kernel): %s",
                report.position_differences,
            )

    async def _compare_balances(self, report: ReconcileReport) -> None:
        """Spot: balances of traded base assets against the kernel's positions."""
        keys = self.credentials.for_reading()
        account = await self.rest.call("GET", self.api.account_path, keys=keys, signed=True)
        totals: dict[str, int] = {}
        for balance in account.get("balances", ()):
            asset, free, locked = (
                str(balance["asset"]),
                str(balance["free"]),
                str(balance["locked"]),
            )
            report.balances[asset] = (free, locked)
            with contextlib.suppress(FixedPointError):
                totals[asset] = to_fixed(free, _ASSET_PRECISION) + to_fixed(
                    locked, _ASSET_PRECISION
                )
        report.balance_drift = self._balance_drift(totals)

    def _balance_drift(self, totals: Mapping[str, int]) -> dict[str, int]:
        """Compare each traded base asset's balance with what the kernel's fills explain."""
        if self.orders is None:
            return {}
        held: dict[str, int] = {}
        for symbol in {tracked.symbol for tracked in self._tracked.values()}:
            instrument = self._instruments(symbol)
            if instrument is None or instrument.size_precision > _ASSET_PRECISION:
                continue
            scale = 10 ** (_ASSET_PRECISION - instrument.size_precision)
            quantity = self.orders.portfolio.quantity(self.venue_name, symbol)
            held[instrument.base] = held.get(instrument.base, 0) + quantity * scale
        drift: dict[str, int] = {}
        for asset, position in held.items():
            if asset not in totals:
                continue
            unexplained = totals[asset] - position + self._commissions_paid.get(asset, 0)
            baseline = self._balance_baseline.setdefault(asset, unexplained)
            if unexplained != baseline:
                drift[asset] = unexplained - baseline
        if drift:
            log.warning(
                "binance balances moved by what the journal does not explain: %s",
                {asset: from_fixed(amount, _ASSET_PRECISION) for asset, amount in drift.items()},
            )
        return drift

    async def _reconcile_logged(self) -> None:
        try:
            await self.reconcile()
        except (VenueError, OutcomeUnknownError, KeyError, ValueError) as error:
            log.error("reconciliation with binance failed: %s", error)

    def _adopt(self, order: KernelOrder) -> TrackedOrder:
        """Track a kernel order (after a restart the adapter starts knowing nothing)."""
        tracked = self._tracked.get(order.client_order_id)
        if tracked is None:
            tracked = TrackedOrder(
                order.client_order_id,
                order.symbol,
                order.quantity,
                venue_order_id=order.venue_order_id,
                accepted=bool(order.venue_order_id),
                filled=order.filled_quantity,
                trade_ids=set(order.fill_ids),
            )
            self._track(tracked)
        return tracked

    def _track(self, tracked: TrackedOrder) -> None:
        tracked.venue_client_id = venue_client_id(tracked.client_order_id)
        self._tracked[tracked.client_order_id] = tracked
        self._kernel_ids[tracked.venue_client_id] = tracked.client_order_id

    async def _reconcile_order(self, tracked: TrackedOrder) -> bool | None:
        try:
            return await self._resolve(tracked)
        except (VenueError, OutcomeUnknownError) as error:
            log.warning("reconciling %s: %s", tracked.client_order_id, error)
            return None

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("binance order task failed", exc_info=task.exception())

    def _known(self, client_order_id: str) -> TrackedOrder | None:
        """Return a tracked order, adopting it from the kernel's open orders if need be.

        After a restart an order from the journal may be cancelled, or reported
        on, before reconciliation has looked at it.
        """
        tracked = self._tracked.get(client_order_id)
        if tracked is None and client_order_id and self.orders is not None:
            for order in self.orders.open_orders(self.venue_name):
                if order.client_order_id == client_order_id:
                    return self._adopt(order)
        return tracked

    def _known_by_venue_id(self, venue_cid: str) -> TrackedOrder | None:
        """Return the tracked order the venue calls ``venue_cid``, adopting it if need be."""
        kernel_cid = self._kernel_ids.get(venue_cid)
        if kernel_cid is not None:
            return self._tracked.get(kernel_cid)
        if venue_cid and self.orders is not None:
            for order in self.orders.open_orders(self.venue_name):
                if venue_client_id(order.client_order_id) == venue_cid:
                    return self._adopt(order)
        return None


def _decimal_text(value: int, precision: int) -> str:
    """Return a fixed-point value as the shortest exact decimal string."""
    text = from_fixed(value, precision)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _signed_fixed(text: str, precision: int) -> int:
    """Convert a signed decimal string (a futures position) exactly to fixed point."""
    if text.startswith("-"):
        return -to_fixed(text[1:], precision)
    return to_fixed(text, precision)


def _ns(ms: Any) -> int:
    return int(ms) * 1_000_000 if isinstance(ms, int) else 0
