"""The OKX order venue: REST answers, the private ``orders`` channel and reconciliation as events.

The venue registers ``<venue>.submit`` and ``<venue>.cancel`` on the bus and
publishes what OKX answers on ``events.order.<venue>``
(:class:`~kernel.orders.manager.OrderVenue`). Orders go out over signed REST
(:mod:`.rest`); what becomes of them arrives on the private websocket's
``orders`` channel and, after every (re)connect, from reconciliation. The
rules and the OKX pages they come from are listed in ``docs/venues.md``,
"Order entry: OKX":

* **Client order ids.** OKX takes ``clOrdId`` of at most 32 letters and
  digits. A kernel id that already fits is sent as it is; any other is sent
  as ``k`` + 31 hex digits of its SHA-256, the same after a restart.
* **Private websocket.** ``login`` with key, passphrase, a timestamp in
  seconds and the base64 HMAC-SHA256 of timestamp + ``GET`` +
  ``/users/self/verify``; after the ``login`` event, ``subscribe`` to
  ``orders`` for the instrument type; the text ``ping`` after silence, and a
  reconnect when even that gets no answer.
* **States.** ``live`` → accepted; a push with ``tradeId`` and ``fillSz`` →
  a fill at ``fillPx`` with fee ``-fillFee`` in ``fillFeeCcy``; ``canceled``
  → canceled; ``mmp_canceled`` → expired (market maker protection). Fills are
  identified by trade id, so the stream, the order query and the fill list
  count each trade once.
* **Reconciliation** after every connect (login and subscription first, so
  nothing falls between): each order the kernel has open is looked up, fills
  it missed come from ``/api/v5/trade/fills``, orders the venue closed are
  closed, orders it does not know are expired, and pending venue orders the
  kernel does not have open are reported, never adopted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from kernel.bus import Bus, topics
from kernel.live.backoff import Backoff
from kernel.live.credentials import CredentialsError, VenueCredentials
from kernel.live.okx_orders.rest import (
    CANCEL_PATH,
    FILLS_PATH,
    ORDER_DOES_NOT_EXIST,
    ORDER_PATH,
    PENDING_PATH,
    OkxRest,
    OkxVenueError,
    OutcomeUnknownError,
    sign,
)
from kernel.live.tracked_orders import (
    ClosingKind,
    TrackedOrder,
    accepting_event,
    closing_event,
    filling_event,
    keep_connected,
)
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
    "PRIVATE_URL",
    "KernelOrders",
    "OkxOrderEntry",
    "ReconcileReport",
    "fee_in_quote",
    "venue_client_id",
]

log = logging.getLogger(__name__)
# The websocket library logs every frame at debug level, and the login frame carries the
# key, the passphrase and a signature: this connection's frames are never logged.
_wire_log = logging.getLogger(__name__ + ".wire")
_wire_log.setLevel(logging.INFO)

PRIVATE_URL = "wss://ws.okx.com:8443/ws/v5/private"
_VERIFY_PATH = "/users/self/verify"
_HEALTHY_AFTER_S = 5.0
_ORDER_TYPES = {
    TimeInForce.GTC: "limit",
    TimeInForce.POST_ONLY: "post_only",
    TimeInForce.IOC: "ioc",
    TimeInForce.FOK: "fok",
}
_CLOSED_STATES = frozenset({"filled", "canceled", "mmp_canceled"})
_MMP_REASON = "canceled by the venue's market maker protection (mmp_canceled)"


def venue_client_id(client_order_id: str) -> str:
    """Return the ``clOrdId`` sent for a kernel client order id (at most 32 letters and digits)."""
    if client_order_id.isascii() and client_order_id.isalnum() and len(client_order_id) <= 32:
        return client_order_id
    return "k" + hashlib.sha256(client_order_id.encode()).hexdigest()[:31]


def fee_in_quote(amount: str, currency: str, price: int, instrument: Instrument) -> int | None:
    """Return an OKX fee field as the fee charged in quote fee units, or None if not valued.

    OKX writes fees negative when charged and positive when rebated; the
    kernel's fee is the opposite. A fee in the base currency is valued at the
    fill price and rounded up (never kinder than the venue).
    """
    charged = -Fraction(amount)
    base, quote = _currencies(instrument)
    if currency == quote:
        value = charged
    elif currency == base:
        value = charged * Fraction(price, 10**instrument.price_precision)
    else:
        return None
    units = value * 10**FEE_PRECISION
    rounded_up: int = -((-units.numerator) // units.denominator)
    return rounded_up


def _currencies(instrument: Instrument) -> tuple[str, str]:
    if instrument.base and instrument.quote:
        return instrument.base, instrument.quote
    base, _, rest = instrument.symbol.partition("-")
    return base, rest.partition("-")[0]


class KernelOrder(Protocol):
    """The kernel's view of an order, as reconciliation reads it (:class:`~kernel.orders.Order`)."""

    client_order_id: str
    symbol: str
    quantity: int
    filled_quantity: int
    venue_order_id: str
    fill_ids: set[str]
    status: OrderStatus


class KernelOrders(Protocol):
    """The order manager's open orders."""

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Any]:
        """Return the orders still open, oldest first."""
        ...


@dataclass
class ReconcileReport:
    """What one reconciliation found."""

    checked: int = 0
    fills: int = 0
    closed: int = 0
    lost: int = 0
    unknown_at_kernel: list[str] = field(default_factory=list)
    """``clOrdId`` of pending venue orders the kernel does not have open."""


class _LoginRefusedError(Exception):
    """The private websocket refused the login or the subscription."""


class OkxOrderEntry:
    """Orders on OKX through signed REST and the private ``orders`` channel.

    ``instruments`` returns an instrument by ``instId`` (the market feed's
    lookup). After :meth:`start`, the order manager's ``<venue>.submit`` and
    ``<venue>.cancel`` reach the venue; ``orders`` (the order manager) lets
    reconciliation see the kernel's open orders after every (re)connect.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        credentials: VenueCredentials,
        instruments: Callable[[str], Instrument | None],
        venue_name: str = "okx",
        rest_url: str | None = None,
        private_url: str = PRIVATE_URL,
        inst_type: str = "SPOT",
        clock_resync_s: float = 300.0,
        max_retry_wait_s: float = 5.0,
        ping_after_s: float = 25.0,
        answer_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        orders: KernelOrders | None = None,
        lookup_delay_s: float = 1.0,
    ) -> None:
        self.venue_name = venue_name
        self.credentials = credentials
        self.rest = OkxRest(rest_url=rest_url, max_retry_wait_s=max_retry_wait_s)
        self.private_url = private_url
        self.inst_type = inst_type
        self.clock_resync_s = clock_resync_s
        self.ping_after_s = ping_after_s
        """OKX drops a connection silent for 30 s: ``ping`` after this much silence."""
        self.answer_timeout_s = answer_timeout_s
        self.lookup_delay_s = lookup_delay_s
        """After an unknown outcome, wait this long before looking the order up, and as
        long again before believing a "does not exist": the request may still be on its way."""
        self.backoff = backoff if backoff is not None else Backoff()
        self.orders = orders
        self.stream_connected = asyncio.Event()
        self.stream_connects = 0
        self.login_failures: list[str] = []
        """``code: msg`` of each refused login or subscription."""
        self.pings = 0
        self.duplicate_fills = 0
        self.unvalued_fees = 0
        self.unknown_orders: set[str] = set()
        """``clOrdId`` of pending venue orders the kernel never placed."""
        self.reconciliations: list[ReconcileReport] = []
        self._bus = bus
        self._instruments = instruments
        self._topic = topics.orders(venue_name)
        self._tracked: dict[str, TrackedOrder] = {}
        self._by_venue_id: dict[str, TrackedOrder] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._endpoints = [topics.submit_endpoint(venue_name), topics.cancel_endpoint(venue_name)]
        bus.register_endpoint(self._endpoints[0], self.submit)
        bus.register_endpoint(self._endpoints[1], self.cancel)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Measure the clock, then keep the private websocket (and reconciliation) running.

        Raises :class:`~kernel.live.credentials.CredentialsError` without read keys.
        """
        self.credentials.for_reading()
        await self.rest.open()
        await self.rest.sync_clock()
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="okx-orders")

    async def stop(self) -> None:
        """Stop the websocket and background work, close the HTTP session and the endpoints."""
        self._stopping.set()
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.rest.close()
        self.close()

    def close(self) -> None:
        """Release the bus endpoints."""
        for name in self._endpoints:
            self._bus.deregister_endpoint(name)
        self._endpoints = []

    async def drop_connection(self) -> None:
        """Close the private websocket; it reconnects, logs in and reconciles again."""
        socket = self._socket
        if socket is not None:
            await socket.close()

    # -- the order manager's endpoints -----------------------------------------

    def submit(self, request: OrderRequest) -> None:
        """Send a new order (answers arrive as order events)."""
        tracked = self._track(
            request.client_order_id, request.symbol, request.quantity, venue_order_id=""
        )
        if not self.rest.is_open:
            self._close(tracked, OrderRejected, "the okx venue is not started")
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

    def _order_body(self, request: OrderRequest, instrument: Instrument) -> dict[str, str]:
        body = {
            "instId": request.symbol,
            "tdMode": "cash",
            "clOrdId": venue_client_id(request.client_order_id),
            "side": "buy" if request.side is OrderSide.BUY else "sell",
            "sz": _decimal_text(request.quantity, instrument.size_precision),
        }
        if request.order_type is OrderType.MARKET:
            body["ordType"] = "market"
            if request.side is OrderSide.BUY:
                body["tgtCcy"] = "base_ccy"  # sz in the base currency, as the kernel counts
            return body
        if request.price is None:
            raise ValueError("a limit order needs a price")
        body["ordType"] = _ORDER_TYPES[request.time_in_force]
        body["px"] = _decimal_text(request.price, instrument.price_precision)
        return body

    async def _place(self, tracked: TrackedOrder, request: OrderRequest) -> None:
        instrument = self._instruments(request.symbol)
        if instrument is None:
            self._close(tracked, OrderRejected, "unknown instrument at the venue adapter")
            return
        try:
            body = self._order_body(request, instrument)
        except (ValueError, KeyError) as error:
            self._close(tracked, OrderRejected, f"not an OKX order: {error}")
            return
        keys = self.credentials.for_trading()
        for attempt in (1, 2):
            try:
                data = await self.rest.call(
                    "POST", ORDER_PATH, body=body, keys=keys, inst_id=request.symbol
                )
            except OkxVenueError as error:
                if error.rate_limited and attempt == 1 and self._can_wait(error):
                    log.warning(
                        "order %s rate limited: sending again in %.1f s",
                        tracked.client_order_id,
                        error.wait_s,
                    )
                    await asyncio.sleep(error.wait_s)
                    continue
                log.warning("order %s refused: %s", tracked.client_order_id, error)
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
            if data:
                self._accept(tracked, str(data[0].get("ordId", "")), _ns(data[0].get("ts")))
            return

    def _can_wait(self, error: OkxVenueError) -> bool:
        return error.wait_s <= self.rest.max_retry_wait_s

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
        if tracked is None or tracked.closed:
            self._cancel_rejected(request, tracked, "the order is no longer working")
            return
        body = {"instId": request.symbol, "clOrdId": tracked.venue_client_id}
        keys = self.credentials.for_trading()
        for attempt in (1, 2):
            try:
                await self.rest.call(
                    "POST", CANCEL_PATH, body=body, keys=keys, inst_id=request.symbol
                )
            except OkxVenueError as error:
                if error.rate_limited and attempt == 1 and self._can_wait(error):
                    await asyncio.sleep(error.wait_s)
                    continue
                self._cancel_rejected(request, tracked, str(error))
                # Filled or canceled already, perhaps: find out what it is now.
                await self._reconcile_order(tracked)
                return
            except OutcomeUnknownError as unknown:
                log.warning("cancel of %s: outcome unknown (%s)", tracked.client_order_id, unknown)
            break
        # The cancel was taken; the canceled state comes on the orders channel. Without
        # a connection, ask.
        if not self.stream_connected.is_set():
            await self._reconcile_order(tracked)

    def _cancel_rejected(
        self, request: CancelRequest, tracked: TrackedOrder | None, why: str
    ) -> None:
        self._publish(
            CancelRejected(
                request.client_order_id,
                tracked.venue_order_id if tracked else "",
                self.venue_name,
                request.symbol,
                time.time_ns(),
                why,
            )
        )

    async def _resolve(self, tracked: TrackedOrder, *, believe_missing: bool = True) -> bool | None:
        """Find out what became of an order; return whether the venue knows it (None: unclear).

        An order the venue does not know is expired, if ``believe_missing``.
        """
        try:
            data = await self.rest.call(
                "GET",
                ORDER_PATH,
                query={"instId": tracked.symbol, "clOrdId": tracked.venue_client_id},
                keys=self.credentials.for_reading(),
                inst_id=tracked.symbol,
            )
        except OkxVenueError as error:
            if error.code == ORDER_DOES_NOT_EXIST:
                if believe_missing:
                    self._close(tracked, OrderExpired, "the venue does not know the order")
                return False
            log.warning("looking up %s failed: %s", tracked.client_order_id, error)
            return None
        except OutcomeUnknownError as unknown:
            log.warning("looking up %s failed: %s", tracked.client_order_id, unknown)
            return None
        if not data:
            return None
        await self._apply_order(tracked, data[0], from_stream=False)
        return True

    # -- venue answers → order events --------------------------------------------

    async def _apply_order(
        self, tracked: TrackedOrder, item: Mapping[str, Any], *, from_stream: bool
    ) -> None:
        """Apply an order as OKX describes it (orders channel push or order query)."""
        instrument = self._instruments(tracked.symbol)
        if instrument is None:
            return
        self._accept(tracked, str(item.get("ordId", "")), _ns(item.get("uTime")))
        trade_id = str(item.get("tradeId") or "")
        fill_size = _fixed_or_zero(item.get("fillSz"), instrument.size_precision)
        if from_stream and trade_id and fill_size > 0:
            price = to_fixed(str(item["fillPx"]), instrument.price_precision)
            self._fill(
                tracked,
                instrument,
                trade_id=trade_id,
                price=price,
                quantity=fill_size,
                fee=str(item.get("fillFee") or "0"),
                fee_currency=str(item.get("fillFeeCcy") or item.get("feeCcy") or ""),
                maker=item.get("execType") == "M",
                ts_ns=_ns(item.get("fillTime")) or _ns(item.get("uTime")),
            )
        state = str(item.get("state", ""))
        filled_at_venue = _fixed_or_zero(item.get("accFillSz"), instrument.size_precision)
        if filled_at_venue > tracked.filled:
            # Trades this adapter never saw: the fill list has every one of them.
            await self._fetch_fills(tracked, instrument)
        if state in _CLOSED_STATES:
            self._close_as(tracked, state)

    def on_private_message(self, payload: bytes) -> None:
        """Handle one message of the private websocket (after login)."""
        if payload == b"pong":
            return
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning(
                "okx private websocket: a message that is not JSON (%d bytes)",
                len(payload),
            )
            return
        if not isinstance(message, dict):
            return
        if message.get("event") == "error":
            log.error("okx private websocket error %s: %s", message.get("code"), message.get("msg"))
            return
        arg = message.get("arg")
        if not isinstance(arg, dict) or arg.get("channel") != "orders":
            return
        for item in message.get("data") or ():
            if not isinstance(item, dict):
                continue
            tracked = self._by_venue_client_id(str(item.get("clOrdId", "")))
            if tracked is None:
                continue  # not this kernel's (reconciliation reports those)
            self._spawn(self._apply_logged(tracked, item))

    async def _apply_logged(self, tracked: TrackedOrder, item: Mapping[str, Any]) -> None:
        try:
            await self._apply_order(tracked, item, from_stream=True)
        except (KeyError, TypeError, ValueError, FixedPointError) as error:
            log.error("okx order push for %s not understood: %r", tracked.client_order_id, error)
        except (OkxVenueError, OutcomeUnknownError) as error:
            log.warning("okx fills of %s: %s", tracked.client_order_id, error)

    async def fetch_fills(self, client_order_id: str) -> int:
        """Apply the order's fills from the venue's fill list not yet seen; return how many."""
        tracked = self._known(client_order_id)
        if tracked is None:
            return 0
        instrument = self._instruments(tracked.symbol)
        if instrument is None:
            return 0
        return await self._fetch_fills(tracked, instrument)

    async def _fetch_fills(self, tracked: TrackedOrder, instrument: Instrument) -> int:
        if not tracked.venue_order_id:
            return 0
        trades = await self.rest.call(
            "GET",
            FILLS_PATH,
            query={
                "instType": self.inst_type,
                "instId": tracked.symbol,
                "ordId": tracked.venue_order_id,
            },
            keys=self.credentials.for_reading(),
        )
        applied = 0
        # Newest first on the wire; the kernel applies them as they happened.
        for trade in sorted(trades, key=lambda t: (int(t.get("ts") or 0), str(t["tradeId"]))):
            applied += self._fill(
                tracked,
                instrument,
                trade_id=str(trade["tradeId"]),
                price=to_fixed(str(trade["fillPx"]), instrument.price_precision),
                quantity=to_fixed(str(trade["fillSz"]), instrument.size_precision),
                fee=str(trade.get("fee") or "0"),
                fee_currency=str(trade.get("feeCcy") or ""),
                maker=trade.get("execType") == "M",
                ts_ns=_ns(trade.get("ts")),
            )
        return applied

    def _accept(self, tracked: TrackedOrder, venue_order_id: str, ts_ns: int) -> None:
        if not venue_order_id:
            return
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
        fee: str,
        fee_currency: str,
        maker: bool,
        ts_ns: int,
    ) -> int:
        """Publish one fill unless its trade was seen; return 1 when published."""
        if trade_id in tracked.trade_ids:
            self.duplicate_fills += 1
            return 0
        charged = fee_in_quote(fee, fee_currency, price, instrument)
        if charged is None:
            self.unvalued_fees += 1
            log.warning(
                "fee of trade %s is in %s, which has no quote value here: booked as 0",
                trade_id,
                fee_currency,
            )
            charged = 0
        self._publish(
            filling_event(
                tracked,
                self.venue_name,
                trade_id=trade_id,
                price=price,
                quantity=quantity,
                fee=charged,
                liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
                ts_ns=ts_ns,
            )
        )
        return 1

    def _close_as(self, tracked: TrackedOrder, state: str) -> None:
        if state == "canceled":
            self._close(tracked, OrderCanceled, "")
        elif state == "mmp_canceled":
            self._close(tracked, OrderExpired, _MMP_REASON)
        elif state == "filled" and not tracked.closed:
            log.error(
                "%s is filled at the venue but its fills do not add up", tracked.client_order_id
            )

    def _close(self, tracked: TrackedOrder, kind: ClosingKind, reason: str) -> None:
        event = closing_event(tracked, kind, self.venue_name, reason)
        if event is not None:
            self._publish(event)

    def _publish(self, event: OrderEvent) -> None:
        self._bus.publish(self._topic, event)

    # -- the private websocket ---------------------------------------------------

    async def _run(self) -> None:
        """Keep the private websocket logged in and subscribed; resync the clock now and then."""
        await keep_connected(
            self._connect_once,
            self._resync_clock,
            stopping=self._stopping,
            backoff=self.backoff,
            what="okx private websocket",
            log=log,
        )

    def _login_message(self) -> str:
        keys = self.credentials.for_reading()
        if keys.passphrase is None:
            raise CredentialsError("OKX keys need a passphrase")
        timestamp = str(self.rest.clock.now_ms() // 1000)
        signature = sign(keys.secret.reveal(), f"{timestamp}GET{_VERIFY_PATH}")
        login = {
            "apiKey": keys.key.reveal(),
            "passphrase": keys.passphrase.reveal(),
            "timestamp": timestamp,
            "sign": signature,
        }
        return orjson.dumps({"op": "login", "args": [login]}).decode()

    async def _await_event(self, socket: ClientConnection, wanted: str) -> None:
        """Read until the ``wanted`` event; an ``error`` event refuses the connection."""
        async with asyncio.timeout(self.answer_timeout_s):
            while True:
                raw = await socket.recv(decode=False)
                payload = raw.encode() if isinstance(raw, str) else raw
                try:
                    message = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(message, dict):
                    continue
                event = message.get("event")
                if event == "error" or (event == wanted and str(message.get("code", "0")) != "0"):
                    refusal = f"{message.get('code')}: {message.get('msg')}"
                    self.login_failures.append(refusal)
                    raise _LoginRefusedError(refusal)
                if event == wanted:
                    return

    async def _connect_once(self) -> bool:
        try:
            async with connect(
                self.private_url, open_timeout=10, proxy=None, logger=_wire_log
            ) as socket:
                await socket.send(self._login_message())
                try:
                    await self._await_event(socket, "login")
                    subscribe = {"op": "subscribe", "args": [self._orders_arg()]}
                    await socket.send(orjson.dumps(subscribe).decode())
                    await self._await_event(socket, "subscribe")
                except _LoginRefusedError as refusal:
                    log.error("okx private websocket refused the login: %s", refusal)
                    if str(refusal).startswith(("60004", "60006")):
                        # The timestamp: measure the clock before the next attempt.
                        with contextlib.suppress(OkxVenueError, OutcomeUnknownError):
                            await self.rest.sync_clock()
                    return False
                return await self._serve(socket)
        except (OSError, TimeoutError, WebSocketException) as exc:
            log.warning("okx private websocket: %s", type(exc).__name__)
            return False

    def _orders_arg(self) -> dict[str, str]:
        return {"channel": "orders", "instType": self.inst_type}

    async def _serve(self, socket: ClientConnection) -> bool:
        """Read a logged-in connection to its end; return whether it lasted."""
        self.stream_connects += 1
        self._socket = socket
        opened = time.monotonic()
        self.stream_connected.set()
        # Subscribed first, then reconciled: nothing falls between the two.
        reconcile = asyncio.get_running_loop().create_task(self._reconcile_logged())
        pinged = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.ping_after_s):
                        raw = await socket.recv(decode=False)
                except TimeoutError:
                    if pinged:
                        log.warning("okx private websocket: no pong, reconnecting")
                        return False
                    pinged = True
                    self.pings += 1
                    await socket.send("ping")
                    continue
                pinged = False
                self.on_private_message(raw.encode() if isinstance(raw, str) else raw)
        except WebSocketException:
            log.info("okx private websocket closed")
        finally:
            self._socket = None
            self.stream_connected.clear()
            reconcile.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reconcile
        # A connection that lasted counts as healthy: the next attempt starts from base delay.
        return time.monotonic() - opened >= _HEALTHY_AFTER_S

    async def _resync_clock(self) -> None:
        while True:
            await asyncio.sleep(self.clock_resync_s)
            with contextlib.suppress(OkxVenueError, OutcomeUnknownError):
                await self.rest.sync_clock()

    # -- reconciliation ----------------------------------------------------------

    async def reconcile(self) -> ReconcileReport:
        """Compare the venue's orders with the kernel's open ones, and settle the difference."""
        report = ReconcileReport()
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
        pending = await self.rest.call(
            "GET",
            PENDING_PATH,
            query={"instType": self.inst_type},
            keys=self.credentials.for_reading(),
        )
        for entry in pending:
            venue_id = str(entry.get("clOrdId", ""))
            mine = self._by_venue_client_id(venue_id)
            if mine is None or mine.closed:
                report.unknown_at_kernel.append(venue_id or str(entry.get("ordId", "")))
        if report.unknown_at_kernel:
            self.unknown_orders.update(report.unknown_at_kernel)
            log.error(
                "okx has pending orders this kernel never placed (not adopted): %s",
                sorted(report.unknown_at_kernel)[:10],
            )
        self.reconciliations.append(report)
        log.info(
            "reconciled with okx: %d orders checked, %d with new fills, %d closed, "
            "%d lost, %d unknown at the kernel",
            report.checked,
            report.fills,
            report.closed,
            report.lost,
            len(report.unknown_at_kernel),
        )
        return report

    async def _reconcile_logged(self) -> None:
        try:
            await self.reconcile()
        except (OkxVenueError, OutcomeUnknownError, KeyError, ValueError) as error:
            log.error("reconciliation with okx failed: %s", error)

    async def _reconcile_order(self, tracked: TrackedOrder) -> bool | None:
        try:
            return await self._resolve(tracked)
        except (OkxVenueError, OutcomeUnknownError) as error:
            log.warning("reconciling %s: %s", tracked.client_order_id, error)
            return None

    # -- bookkeeping -------------------------------------------------------------

    def _track(
        self, client_order_id: str, symbol: str, quantity: int, *, venue_order_id: str
    ) -> TrackedOrder:
        tracked = TrackedOrder(
            client_order_id,
            symbol,
            quantity,
            venue_client_id=venue_client_id(client_order_id),
            venue_order_id=venue_order_id,
            accepted=bool(venue_order_id),
        )
        self._tracked[client_order_id] = tracked
        self._by_venue_id[tracked.venue_client_id] = tracked
        return tracked

    def _adopt(self, order: KernelOrder) -> TrackedOrder:
        """Track a kernel order (after a restart the adapter starts knowing nothing)."""
        tracked = self._tracked.get(order.client_order_id)
        if tracked is None:
            tracked = self._track(
                order.client_order_id,
                order.symbol,
                order.quantity,
                venue_order_id=order.venue_order_id,
            )
            tracked.filled = order.filled_quantity
            tracked.trade_ids = set(order.fill_ids)
        return tracked

    def _known(self, client_order_id: str) -> TrackedOrder | None:
        """Return a tracked order, taking it over from the kernel's open orders if need be."""
        tracked = self._tracked.get(client_order_id)
        if tracked is None and self.orders is not None:
            for order in self.orders.open_orders(self.venue_name):
                if order.client_order_id == client_order_id:
                    return self._adopt(order)
        return tracked

    def _by_venue_client_id(self, venue_id: str) -> TrackedOrder | None:
        tracked = self._by_venue_id.get(venue_id)
        if tracked is None and venue_id and self.orders is not None:
            for order in self.orders.open_orders(self.venue_name):
                if venue_client_id(order.client_order_id) == venue_id:
                    return self._adopt(order)
        return tracked

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("okx order task failed", exc_info=task.exception())


def _decimal_text(value: int, precision: int) -> str:
    """Return a fixed-point value as the shortest exact decimal string."""
    text = from_fixed(value, precision)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _fixed_or_zero(text: Any, precision: int) -> int:
    return to_fixed(str(text), precision) if text not in (None, "") else 0


def _ns(ms: Any) -> int:
    text = str(ms) if ms is not None else ""
    return int(text) * 1_000_000 if text.isdigit() else 0
