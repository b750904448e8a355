"""OKX v5, emulated: public book and trade channels, signed order endpoints, private orders.

What is served, and the OKX v5 API documentation it follows
(https://www.okx.com/docs-v5/en/, sections "REST authentication", "WebSocket",
"Order book channel", "Trades channel", "Place order", "Cancel order", "Get
order list", "Error codes"):

* ``/ws/v5/public``: ``{"op":"subscribe"|"unsubscribe","args":[{"channel":..,
  "instId":..}]}`` answered per argument with ``{"event":"subscribe","arg":..,
  "connId":..}``; unknown channels get ``{"event":"error","code":"60018",..}``
  and invalid requests ``60012``; the text frame ``ping`` is answered ``pong``.
* ``books`` (and the other incremental book channels): a subscriber first
  gets a ``snapshot`` of the book the replay has reached (all levels, ``[px,
  sz, "0", orders]`` as received, the CRC32 ``checksum`` of the top 25), then
  every recorded ``update``. Each message carries ``seqId`` and ``prevSeqId``
  (-1 on a snapshot) numbered by the emulator, as OKX does today; the 2022
  recordings predate them. Recorded checksums are kept.
* ``trades``, ``tickers`` and every other recorded channel: recorded bytes.
* REST ``GET /api/v5/public/time``, ``/api/v5/public/instruments`` (the
  recorded body), ``/api/v5/market/books`` (the replayed book).
* Signed REST: headers ``OK-ACCESS-KEY``, ``OK-ACCESS-SIGN`` (base64
  HMAC-SHA256 of timestamp + method + request path with query + body),
  ``OK-ACCESS-TIMESTAMP`` (ISO 8601, within 30 s of the server's clock, else
  50102), ``OK-ACCESS-PASSPHRASE``; errors 50103–50107, 50111–50113 with HTTP
  401 as ``{"msg":..,"code":..}``.
* ``POST /api/v5/trade/order`` (``limit``, ``post_only``, ``ioc``, ``fok``,
  ``market``; market buys need ``tgtCcy=base_ccy`` here), ``POST
  /api/v5/trade/cancel-order``, ``GET /api/v5/trade/orders-pending``, ``GET
  /api/v5/trade/order``: ``{"code":"0"|"1","msg":..,"data":[{..,"sCode",
  "sMsg"}]}``.
* ``GET /api/v5/trade/fills`` (every fill of the account, newest first,
  filtered by ``instType``, ``instId`` and ``ordId``; ``fee`` negative when
  charged, as OKX writes it).
* Rate-limit faults answer HTTP 429 (or 418) with ``{"msg":"Too Many
  Requests","code":"50011"}``; OKX documents no Retry-After header.
* ``/ws/v5/private`` (sections "WebSocket: Login", "Order channel", "Error
  codes: WebSocket"): ``{"op":"login","args":[{"apiKey","passphrase",
  "timestamp","sign"}]}`` where ``timestamp`` is Unix seconds and ``sign`` the
  base64 HMAC-SHA256 of timestamp + ``GET`` + ``/users/self/verify`` (the
  REST signature's secret), within 30 s of the server's clock. Answers
  ``{"event":"login","code":"0",..}``, or an ``error`` event: 60009 login
  failure (malformed arguments), 60005 invalid apiKey, 60024 wrong
  passphrase, 60004 invalid timestamp, 60006 timestamp expired, 60007 invalid
  sign. Before a login, a subscription gets 60011 "Please log in". After it,
  ``{"op":"subscribe","args":[{"channel":"orders","instType":..,"instId":..}]}``
  (``instType`` one of SPOT, MARGIN, SWAP, FUTURES, OPTION, ANY; ``instId``
  optional) is acknowledged, and every change of a matching order is pushed:
  the order's fields (as ``GET /api/v5/trade/order`` answers) with ``state``
  ``live``, ``partially_filled``, ``filled`` or ``canceled``, and on a trade
  ``tradeId``, ``fillPx``, ``fillSz``, ``fillFee`` (negative when charged),
  ``fillFeeCcy``, ``fillTime`` and ``execType`` (``M`` maker, ``T`` taker).
  ``ping`` is answered ``pong``. Pushes go out under the stream key
  ``orders:<instType>:<instId>``, so the frame faults (``disconnect_after``,
  ``drop_frames``, ``delay`` with ``match="orders"``) act on them.

Not emulated: business websocket, websocket order placement, batch endpoints,
amend, algo orders, margin modes, ``mmp_canceled`` (no market maker
protection here).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from aiohttp import WSMsgType, web

from kernel.adapters.base import RawFrame
from kernel.adapters.okx import OkxFeed
from kernel.adapters.okx.checksum import okx_checksum
from kernel.adapters.okx.feed import BOOK_CHANNELS
from kernel.book import L2Book
from kernel.bus import Bus
from kernel.emulator.faults import EmulatorStats, FaultPlan
from kernel.emulator.market import ReplayMarket, StringBookSide
from kernel.emulator.matching import EmulatedOrder, Fill, OrderEngine, OrderError
from kernel.emulator.streams import StreamConnection
from tradekernel_sdk.fixedpoint import FixedPointError, from_fixed, to_fixed
from tradekernel_sdk.orders import FEE_PRECISION, OrderSide, OrderType, TimeInForce
from tradekernel_sdk.types import Instrument

__all__ = ["OkxMarket", "OkxServer"]

log = logging.getLogger(__name__)

_CHANNELS = BOOK_CHANNELS | {"books5", "bbo-tbt", "trades", "trades-all", "tickers"}
_TIMESTAMP_TOLERANCE_MS = 30_000
_ORDER_TYPES = {
    "limit": (OrderType.LIMIT, TimeInForce.GTC),
    "post_only": (OrderType.LIMIT, TimeInForce.POST_ONLY),
    "ioc": (OrderType.LIMIT, TimeInForce.IOC),
    "fok": (OrderType.LIMIT, TimeInForce.FOK),
    "market": (OrderType.MARKET, TimeInForce.IOC),
}
_ORDER_TYPE_NAMES = {value: key for key, value in _ORDER_TYPES.items()}
_LOGIN_PATH = "/users/self/verify"
_INST_TYPES = frozenset({"SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "ANY"})


class _Book:
    """One instrument's book on one channel, as received, and its emulated sequence."""

    def __init__(self) -> None:
        self.bids = StringBookSide(descending=True)
        self.asks = StringBookSide(descending=False)
        self.seq_id = 0
        self.ts = "0"
        self.open = False
        self.opening: tuple[int, StringBookSide, StringBookSide, str] | None = None

    def snapshot_item(self, stale: bool = False) -> dict[str, Any]:
        seq_id, bids, asks, ts = (
            self.opening
            if stale and self.opening is not None
            else (self.seq_id, self.bids, self.asks, self.ts)
        )
        best_bids = bids.best()
        best_asks = asks.best()
        return {
            "asks": best_asks,
            "bids": best_bids,
            "ts": ts,
            "checksum": okx_checksum(best_bids, best_asks),
            "prevSeqId": -1,
            "seqId": seq_id,
        }


class OkxMarket(ReplayMarket):
    """Replays OKX v5 public-websocket recordings (see the module docstring)."""

    def __init__(
        self,
        frames: Iterable[RawFrame],
        *,
        stats: EmulatorStats,
        clock_ms: Callable[[], int],
        speed: float | None = None,
        passes: int | None = 1,
        reopen: Callable[[], Iterable[RawFrame]] | None = None,
    ) -> None:
        super().__init__(frames, stats=stats, speed=speed, passes=passes, reopen=reopen)
        self.bus = Bus()
        self.feed = OkxFeed(self.bus)
        """The kernel's own feed over the replayed frames: the book orders match against."""
        self.books: dict[str, _Book] = {}
        self.instrument_bodies: dict[str, bytes] = {}
        self._clock_ms = clock_ms
        self._seq_ids = itertools.count(1_000)

    def reset(self) -> None:
        """Forget the books and the matching feed's state before the next pass.

        Sequence ids go on increasing across passes, as the venue's do.
        """
        self.books = {}
        self.feed = OkxFeed(self.bus)

    def live_book(self, inst_id: str) -> L2Book | None:
        """Return the matching feed's verified book of ``inst_id`` (new after a restart)."""
        return self.feed.book(inst_id)

    def book(self, key: str) -> _Book:
        """Return the string book of stream ``channel:instId``."""
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = _Book()
        return book

    async def on_frame(self, frame: RawFrame) -> None:
        """Update books and the matching feed, then publish the frame to its subscribers."""
        payload = frame.payload
        if frame.source.startswith("rest:"):
            if "/public/instruments" in frame.source:
                self.feed.on_frame(frame)
                inst_type = parse_qs(urlparse(frame.source[5:]).query).get("instType", ["ANY"])[0]
                self.instrument_bodies[inst_type] = payload
            return
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if type(message) is not dict or "event" in message:
            return
        arg = message.get("arg")
        data = message.get("data")
        if type(arg) is not dict or type(data) is not list:
            return
        channel = arg.get("channel")
        inst_id = arg.get("instId")
        key = f"{channel}:{inst_id}"
        self.feed.on_frame(frame)
        if channel in BOOK_CHANNELS:
            book = self.book(key)
            snapshot = message.get("action") == "snapshot"
            if not snapshot and not book.open:
                return
            for item in data:
                if snapshot:
                    book.bids.load(item["bids"])
                    book.asks.load(item["asks"])
                else:
                    book.bids.apply(item["bids"])
                    book.asks.apply(item["asks"])
                book.ts = item.get("ts", book.ts)
                item["prevSeqId"] = -1 if snapshot else book.seq_id
                book.seq_id = next(self._seq_ids)
                item["seqId"] = book.seq_id
            if snapshot and not book.open:
                book.open = True
                book.opening = (book.seq_id, book.bids.copy(), book.asks.copy(), book.ts)
            payload = orjson.dumps(message)
        await self.publish(key, payload)

    def snapshot_frame(self, channel: str, inst_id: str, *, stale: bool) -> bytes | None:
        """Return a ``snapshot`` message of the book as replayed so far (None before it opens)."""
        book = self.books.get(f"{channel}:{inst_id}")
        if book is None or not book.open:
            return None
        message = {
            "arg": {"channel": channel, "instId": inst_id},
            "action": "snapshot",
            "data": [book.snapshot_item(stale)],
        }
        return orjson.dumps(message)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _auth_error(code: str, msg: str) -> web.Response:
    return _json({"msg": msg, "code": code}, 401)


def _result(data: list[dict[str, Any]], *, failed: bool = False) -> web.Response:
    return _json(
        {
            "code": "1" if failed else "0",
            "msg": "All operations failed" if failed else "",
            "data": data,
        }
    )


def _error_body(code: str, msg: str) -> web.Response:
    return _json({"code": code, "msg": msg, "data": []})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OkxServer:
    """The OKX v5 front end over an :class:`OkxMarket`."""

    def __init__(
        self,
        market: OkxMarket,
        *,
        faults: FaultPlan,
        stats: EmulatorStats,
        api_key: str,
        api_secret: str,
        passphrase: str,
        balances: dict[str, str],
        clock_ms: Callable[[], int],
        slow_consumer_s: float = 10.0,
    ) -> None:
        self.market = market
        self.faults = faults
        self.stats = stats
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.passphrase = passphrase
        self.clock_ms = clock_ms
        self.slow_consumer_s = slow_consumer_s
        self._connections: set[StreamConnection] = set()
        self._private: dict[StreamConnection, _PrivateSession] = {}
        self._pushes: set[asyncio.Task[None]] = set()
        self._traded: set[str] = set()
        """Instruments the account has placed orders on (what the fill list reads)."""
        self.engine = OrderEngine(
            market.bus,
            venue="emulator.okx",
            market_venue=market.feed.venue,
            books=market.live_book,
            instrument=self._instrument,
            clock_ms=clock_ms,
            balances=balances,
        )
        self.engine.order_listeners.append(self._on_order)

    def _instrument(self, inst_id: str) -> Instrument | None:
        instrument = self.market.feed.instrument(inst_id)
        if instrument is not None and not (instrument.base and instrument.quote):
            base, _, rest = inst_id.partition("-")
            quote = rest.partition("-")[0]
            instrument = Instrument(
                instrument.venue,
                inst_id,
                instrument.price_precision,
                instrument.size_precision,
                instrument.tick,
                instrument.lot,
                base,
                quote,
            )
        return instrument

    def routes(self, app: web.Application) -> None:
        """Add the venue's routes and middleware to ``app``."""
        app.middlewares.append(self._middleware)
        app.router.add_get("/ws/v5/public", self._public_ws)
        app.router.add_get("/api/v5/public/time", self._time)
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/api/v5/market/books", self._books)
        app.router.add_post("/api/v5/trade/order", self._signed(self._place))
        app.router.add_post("/api/v5/trade/cancel-order", self._signed(self._cancel))
        app.router.add_get("/api/v5/trade/orders-pending", self._signed(self._pending))
        app.router.add_get("/api/v5/trade/order", self._signed(self._order))
        app.router.add_get("/api/v5/trade/fills", self._signed(self._fills))
        app.router.add_get("/ws/v5/private", self._private_ws)

    async def close(self) -> None:
        """Close every websocket."""
        for connection in list(self._connections):
            await connection.close(abrupt=False, code=1001, reason="shutdown")
            await connection.stop()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        self.stats.rest_requests += 1
        answer = self.faults.take_rate_limit(request.path)
        if answer is not None:
            return _json({"msg": "Too Many Requests", "code": "50011"}, answer.status)
        return await handler(request)

    # -- public REST -----------------------------------------------------------

    async def _time(self, request: web.Request) -> web.Response:
        return _result([{"ts": str(self.clock_ms())}])

    async def _instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        body = self.market.instrument_bodies.get(inst_type)
        if body is None:
            return _error_body("51000", "Parameter instType error")
        return web.Response(body=body, content_type="application/json")

    async def _books(self, request: web.Request) -> web.Response:
        inst_id = request.query.get("instId", "")
        book = self.market.books.get(f"books:{inst_id}")
        if book is None or not book.open:
            return _error_body("51001", "Instrument ID does not exist")
        depth = int(request.query.get("sz", "1") or 1)
        self.stats.snapshots_served += 1
        return _result(
            [{"asks": book.asks.best(depth), "bids": book.bids.best(depth), "ts": book.ts}]
        )

    # -- public websocket ------------------------------------------------------

    async def _public_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = StreamConnection(
            ws,
            request,
            faults=self.faults,
            stats=self.stats,
            slow_consumer_s=self.slow_consumer_s,
        )
        self._connections.add(connection)
        self.stats.connections += 1
        conn_id = f"{connection.id:08x}"
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_request(connection, conn_id, message.data)
        finally:
            self.market.forget(connection)
            self._connections.discard(connection)
            await connection.stop()
        return ws

    async def _on_request(self, connection: StreamConnection, conn_id: str, text: str) -> None:
        if text == "ping":
            connection.push_control(b"pong")
            return
        try:
            request = orjson.loads(text)
            op = request["op"]
            args = request["args"]
            if op not in ("subscribe", "unsubscribe") or type(args) is not list:
                raise ValueError(op)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            connection.push_control(
                orjson.dumps(
                    {
                        "event": "error",
                        "code": "60012",
                        "msg": f"Invalid request: {text}",
                        "connId": conn_id,
                    }
                )
            )
            return
        for arg in args:
            channel = arg.get("channel") if type(arg) is dict else None
            inst_id = arg.get("instId") if type(arg) is dict else None
            if channel not in _CHANNELS or type(inst_id) is not str:
                connection.push_control(
                    orjson.dumps(
                        {
                            "event": "error",
                            "code": "60018",
                            "msg": f"Wrong URL or channel:{channel},instId:{inst_id} doesn't "
                            "exist. Please use the correct URL, channel and parameters referring "
                            "to API document.",
                            "connId": conn_id,
                        }
                    )
                )
                continue
            key = f"{channel}:{inst_id}"
            connection.push_control(orjson.dumps({"event": op, "arg": arg, "connId": conn_id}))
            if op == "unsubscribe":
                self.market.unsubscribe(connection, key)
                continue
            if channel in BOOK_CHANNELS:
                stale = False
                if self.market.books.get(key) is not None and self.market.book(key).open:
                    stale = self.faults.take_stale_snapshot()
                snapshot = self.market.snapshot_frame(channel, inst_id, stale=stale)
                if snapshot is not None:
                    self.stats.snapshots_served += 1
                    await connection.push(key, snapshot)
            self.market.subscribe(connection, key)

    # -- signed REST -----------------------------------------------------------

    def _signed(
        self, handler: Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]
    ) -> Handler:
        async def checked(request: web.Request) -> web.Response:
            body = await request.read()
            refusal = self._authenticate(request, body)
            if refusal is not None:
                return refusal
            params: dict[str, Any] = dict(request.query)
            if body:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    return _error_body("50002", "JSON syntax error")
                if type(parsed) is not dict:
                    return _error_body("50002", "JSON syntax error")
                params.update(parsed)
            return await handler(request, params)

        return checked

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        headers = request.headers
        key = headers.get("OK-ACCESS-KEY", "")
        signature = headers.get("OK-ACCESS-SIGN", "")
        timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
        if not key:
            return _auth_error("50103", "Request header OK-ACCESS-KEY cannot be empty.")
        if not passphrase:
            return _auth_error("50104", "Request header OK-ACCESS-PASSPHRASE cannot be empty.")
        if not signature:
            return _auth_error("50106", "Request header OK-ACCESS-SIGN cannot be empty.")
        if not timestamp:
            return _auth_error("50107", "Request header OK-ACCESS-TIMESTAMP cannot be empty.")
        if not hmac.compare_digest(key, self.api_key):
            return _auth_error("50111", "Invalid OK-ACCESS-KEY.")
        if not hmac.compare_digest(passphrase, self.passphrase):
            return _auth_error("50105", "Request header OK-ACCESS-PASSPHRASE incorrect.")
        try:
            sent_ms = int(
                datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000
            )
        except ValueError:
            return _auth_error("50112", "Invalid OK-ACCESS-TIMESTAMP.")
        if abs(self.clock_ms() - sent_ms) > _TIMESTAMP_TOLERANCE_MS:
            self.stats.timestamp_rejections += 1
            return _auth_error("50102", "Timestamp request expired.")
        prehash = (
            timestamp.encode() + request.method.upper().encode() + request.raw_path.encode() + body
        )
        expected = base64.b64encode(hmac.new(self._secret, prehash, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature.encode()):
            self.stats.signature_rejections += 1
            return _auth_error("50113", "Invalid Sign.")
        return None

    def _failed(self, params: dict[str, Any], code: str, msg: str) -> web.Response:
        self.stats.orders_rejected += 1
        return _result(
            [
                {
                    "clOrdId": params.get("clOrdId", ""),
                    "ordId": "",
                    "tag": "",
                    "ts": str(self.clock_ms()),
                    "sCode": code,
                    "sMsg": msg,
                }
            ],
            failed=True,
        )

    async def _place(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        self.stats.orders += 1
        inst_id = params.get("instId", "")
        instrument = self._instrument(inst_id) if type(inst_id) is str else None
        if instrument is None:
            return self._failed(params, "51001", "Instrument ID does not exist")
        side_text = params.get("side")
        if side_text not in ("buy", "sell"):
            return self._failed(params, "51000", "Parameter side error")
        ord_type = params.get("ordType")
        if ord_type not in _ORDER_TYPES:
            return self._failed(params, "51000", "Parameter ordType error")
        order_type, tif = _ORDER_TYPES[ord_type]
        side = OrderSide.BUY if side_text == "buy" else OrderSide.SELL
        if (
            order_type is OrderType.MARKET
            and side is OrderSide.BUY
            and params.get("tgtCcy") != "base_ccy"
        ):
            return self._failed(params, "51000", "Parameter tgtCcy error")
        try:
            quantity = to_fixed(str(params.get("sz", "")), instrument.size_precision)
            price = (
                None
                if order_type is OrderType.MARKET
                else to_fixed(str(params.get("px", "")), instrument.price_precision)
            )
        except FixedPointError:
            return self._failed(params, "51000", "Parameter sz or px error")
        reject = self.faults.take_order_reject()
        if reject is not None:
            return self._failed(params, str(reject.code), reject.msg)
        client_id = str(params.get("clOrdId", ""))
        self._traded.add(inst_id)
        try:
            order = self.engine.place(
                inst_id,
                side=side,
                order_type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=tif,
                client_order_id=client_id,
            )
        except OrderError as error:
            return self._failed(params, *_order_error(error))
        self.stats.fills += len(order.fills)
        return _result(
            [
                {
                    "clOrdId": client_id,
                    "ordId": str(order.order_id),
                    "tag": "",
                    "ts": str(order.created_ms),
                    "sCode": "0",
                    "sMsg": "Order placed",
                }
            ]
        )

    def _find(self, params: dict[str, Any]) -> EmulatedOrder | None:
        inst_id = str(params.get("instId", ""))
        ord_id = str(params.get("ordId", ""))
        if ord_id:
            return self.engine.find(inst_id, order_id=int(ord_id)) if ord_id.isdigit() else None
        return self.engine.find(inst_id, client_order_id=str(params.get("clOrdId", "")))

    async def _cancel(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._find(params)
        if order is None or not order.open:
            return self._failed(
                params,
                "51400",
                "Order cancellation failed as the order has "
                "been filled, canceled or does not exist.",
            )
        self.engine.cancel(order)
        return _result(
            [
                {
                    "clOrdId": order.client_order_id,
                    "ordId": str(order.order_id),
                    "ts": str(self.clock_ms()),
                    "sCode": "0",
                    "sMsg": "",
                }
            ]
        )

    async def _pending(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        inst_id = params.get("instId") or None
        return _result([_order_fields(o) for o in self.engine.open_orders(inst_id)])

    async def _order(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        order = self._find(params)
        if order is None:
            return _error_body("51603", "Order does not exist")
        return _result([_order_fields(order)])

    async def _fills(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        inst_type = str(params.get("instType") or "")
        inst_id = str(params.get("instId") or "")
        ord_id = str(params.get("ordId") or "")
        fills = [
            _fill_fields(order, fill)
            for symbol in ([inst_id] if inst_id else sorted(self._traded))
            for order in self.engine.orders_of(symbol)
            if (not ord_id or str(order.order_id) == ord_id)
            and (not inst_type or _inst_type(order.symbol) == inst_type)
            for fill in order.fills
        ]
        fills.sort(key=lambda entry: int(entry["tradeId"]), reverse=True)
        return _result(fills)

    # -- private websocket -----------------------------------------------------

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        # Not user_data: order pushes pass through the frame faults (match "orders").
        connection = StreamConnection(
            ws,
            request,
            faults=self.faults,
            stats=self.stats,
            slow_consumer_s=self.slow_consumer_s,
        )
        session = _PrivateSession(f"{connection.id:08x}")
        self._connections.add(connection)
        self._private[connection] = session
        self.stats.connections += 1
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._on_private_request(connection, session, message.data)
        finally:
            self._private.pop(connection, None)
            self._connections.discard(connection)
            await connection.stop()
        return ws

    def _on_private_request(
        self, connection: StreamConnection, session: _PrivateSession, text: str
    ) -> None:
        def answer(body: dict[str, Any]) -> None:
            connection.push_control(orjson.dumps({**body, "connId": session.conn_id}))

        if text == "ping":
            connection.push_control(b"pong")
            return
        try:
            request = orjson.loads(text)
            op = request["op"]
            args = request["args"]
            if op not in ("login", "subscribe", "unsubscribe") or type(args) is not list:
                raise ValueError(op)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            answer({"event": "error", "code": "60012", "msg": f"Invalid request: {text}"})
            return
        if op == "login":
            refusal = self._check_login(args)
            if refusal is not None:
                answer({"event": "error", "code": refusal[0], "msg": refusal[1]})
                return
            session.logged_in = True
            answer({"event": "login", "code": "0", "msg": ""})
            return
        if not session.logged_in:
            answer({"event": "error", "code": "60011", "msg": "Please log in"})
            return
        for arg in args:
            channel = arg.get("channel") if type(arg) is dict else None
            if channel != "orders":
                answer(
                    {
                        "event": "error",
                        "code": "60018",
                        "msg": f"Wrong URL or channel:{channel} doesn't exist. Please use the "
                        "correct URL, channel and parameters referring to API document.",
                    }
                )
                continue
            inst_type = arg.get("instType")
            inst_id = arg.get("instId")
            if inst_type not in _INST_TYPES or (inst_id is not None and type(inst_id) is not str):
                answer({"event": "error", "code": "60013", "msg": "Invalid args"})
                continue
            wanted = (str(inst_type), str(inst_id or ""))
            if op == "subscribe":
                session.subscriptions.add(wanted)
            else:
                session.subscriptions.discard(wanted)
            answer({"event": op, "arg": arg})

    def _check_login(self, args: list[Any]) -> tuple[str, str] | None:
        """Verify a websocket login as REST requests are verified; return the refusal."""
        fields = args[0] if len(args) == 1 and type(args[0]) is dict else {}
        key, passphrase, timestamp, signature = (
            fields.get(name) for name in ("apiKey", "passphrase", "timestamp", "sign")
        )
        if not all(type(v) is str and v for v in (key, passphrase, timestamp, signature)):
            return "60009", "Login failure"
        assert type(key) is str and type(passphrase) is str
        assert type(timestamp) is str and type(signature) is str
        if not hmac.compare_digest(key, self.api_key):
            return "60005", "Invalid apiKey"
        if not hmac.compare_digest(passphrase, self.passphrase):
            return "60024", "Wrong passphrase"
        if not timestamp.isdigit():
            return "60004", "Invalid timestamp"
        if abs(self.clock_ms() - int(timestamp) * 1000) > _TIMESTAMP_TOLERANCE_MS:
            self.stats.timestamp_rejections += 1
            return "60006", "Timestamp request expired"
        prehash = f"{timestamp}GET{_LOGIN_PATH}".encode()
        expected = base64.b64encode(hmac.new(self._secret, prehash, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature.encode()):
            self.stats.signature_rejections += 1
            return "60007", "Invalid sign"
        return None

    def _on_order(self, order: EmulatedOrder, execution: str, fill: Fill | None) -> None:
        if execution == "REJECTED":
            return  # refused over REST with sCode, never pushed
        inst_type = _inst_type(order.symbol)
        fields = {**_order_fields(order), **_fill_push_fields(order, fill), "code": "0", "msg": ""}
        key = f"orders:{inst_type}:{order.symbol}"
        for connection, session in list(self._private.items()):
            if connection.closed or not session.logged_in:
                continue
            for sub_type, sub_id in session.subscriptions:
                if sub_type not in ("ANY", inst_type) or sub_id not in ("", order.symbol):
                    continue
                arg = {"channel": "orders", "instType": sub_type, "uid": "emulator"}
                if sub_id:
                    arg["instId"] = sub_id
                payload = orjson.dumps({"arg": arg, "data": [fields]})
                # Queued in order: each task's first step puts its frame on the queue.
                push = asyncio.get_running_loop().create_task(connection.push(key, payload))
                self._pushes.add(push)
                push.add_done_callback(self._pushes.discard)
                break


_STATES = {
    "NEW": "live",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "canceled",
    "REJECTED": "canceled",
}


class _PrivateSession:
    """One private websocket client: whether it logged in, and its ``orders`` subscriptions."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.logged_in = False
        self.subscriptions: set[tuple[str, str]] = set()
        """(instType, instId or "") pairs."""


def _inst_type(inst_id: str) -> str:
    if inst_id.count("-") == 1:
        return "SPOT"
    return "SWAP" if inst_id.endswith("-SWAP") else "FUTURES"


def _fee_text(fee: int) -> str:
    """Return a fee charged (FEE_PRECISION units) as OKX writes it: negative."""
    return "-" + _minimal(from_fixed(fee, FEE_PRECISION)) if fee else "0"


def _fill_push_fields(order: EmulatedOrder, fill: Fill | None) -> dict[str, str]:
    """Return the last-trade fields of an orders-channel push (empty when no trade)."""
    if fill is None:
        return {
            "tradeId": "",
            "fillPx": "",
            "fillSz": "0",
            "fillFee": "0",
            "fillFeeCcy": "",
            "fillTime": "",
            "execType": "",
        }
    return {
        "tradeId": str(fill.trade_id),
        "fillPx": _minimal(order.price_text(fill.price)),
        "fillSz": _minimal(order.size_text(fill.quantity)),
        "fillFee": _fee_text(fill.fee),
        "fillFeeCcy": order.instrument.quote,
        "fillTime": str(fill.time_ms),
        "execType": "M" if fill.maker else "T",
    }


def _fill_fields(order: EmulatedOrder, fill: Fill) -> dict[str, str]:
    """Return one entry of ``GET /api/v5/trade/fills``."""
    return {
        "instType": _inst_type(order.symbol),
        "instId": order.symbol,
        "tradeId": str(fill.trade_id),
        "ordId": str(order.order_id),
        "clOrdId": order.client_order_id,
        "billId": str(fill.trade_id),
        "tag": "",
        "fillPx": _minimal(order.price_text(fill.price)),
        "fillSz": _minimal(order.size_text(fill.quantity)),
        "side": order.side.name.lower(),
        "posSide": "net",
        "execType": "M" if fill.maker else "T",
        "feeCcy": order.instrument.quote,
        "fee": _fee_text(fill.fee),
        "ts": str(fill.time_ms),
        "fillTime": str(fill.time_ms),
    }


def _order_fields(order: EmulatedOrder) -> dict[str, Any]:
    last = order.fills[-1] if order.fills else None
    average = ""
    if order.executed:
        exact = Decimal(order.quote_executed) / Decimal(order.executed)
        average = from_fixed(int(exact), order.instrument.price_precision)
    inst_type = (
        "SPOT"
        if order.symbol.count("-") == 1
        else ("SWAP" if order.symbol.endswith("-SWAP") else "FUTURES")
    )
    return {
        "instType": inst_type,
        "instId": order.symbol,
        "ordId": str(order.order_id),
        "clOrdId": order.client_order_id,
        "tag": "",
        "px": "" if order.price is None else _minimal(order.price_text(order.price)),
        "sz": _minimal(order.size_text(order.quantity)),
        "ordType": _ORDER_TYPE_NAMES[(order.order_type, order.time_in_force)],
        "side": order.side.name.lower(),
        "tdMode": "cash",
        "state": _STATES[order.status],
        "accFillSz": _minimal(order.size_text(order.executed)),
        "avgPx": _minimal(average) if average else "",
        "fillPx": _minimal(order.price_text(last.price)) if last else "",
        "fillSz": _minimal(order.size_text(last.quantity)) if last else "0",
        "tradeId": str(last.trade_id) if last else "",
        "fee": "-" + from_fixed(order.fees, FEE_PRECISION) if order.fees else "0",
        "feeCcy": order.instrument.quote,
        "cTime": str(order.created_ms),
        "uTime": str(order.updated_ms),
    }


def _minimal(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _order_error(error: OrderError) -> tuple[str, str]:
    if error.kind == "insufficient_balance":
        return "51008", "Order failed. Insufficient balance."
    if error.kind == "duplicate":
        return "51016", "Duplicated client order ID"
    if error.kind == "unknown_symbol":
        return "51001", "Instrument ID does not exist"
    if "lot size" in error.detail:
        return "51121", "Order quantity must be a multiple of the lot size."
    return "51000", f"Order rejected: {error.detail}"
