"""Binance spot, emulated: market-data streams, REST snapshots, signed orders, user data.

What is served, and the Binance spot API documentation it follows
(https://developers.binance.com/docs/binance-spot-api-docs, sections "General
API information", "Market data endpoints", "Trading endpoints", "Account
endpoints", "WebSocket streams", "User data stream", "Errors"):

* Streams: ``/stream?streams=a/b`` (combined: ``{"stream":..,"data":..}``, the
  recorded bytes unchanged), ``/ws/<stream>[/<stream>...]`` and ``/ws`` (raw
  payloads), with live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS``
  requests answered ``{"result":...,"id":...}``. Streams are served as
  recorded (``btcusdt@depth@100ms``, ``@bookTicker``, ``@trade``); a stream the
  recording lacks is accepted and stays silent. Server pings every 20 s.
* REST ``GET /api/v3/depth`` (``limit`` default 100, at most 5000) answers
  the book the stream has reached: ``lastUpdateId`` is the ``u`` of the last
  diff published, so the next diff has ``U == lastUpdateId + 1``. The market
  opens at the recorded snapshot: diffs before it are applied silently,
  frames before it are not sent. ``GET /api/v3/exchangeInfo``, ``/api/v3/time``,
  ``/api/v3/ping``.
* Request weight per minute (depth 5/25/50/250 by limit, exchangeInfo 20,
  account 20, openOrders 6 or 80, others 1–4) in ``X-MBX-USED-WEIGHT-1M``; past
  the limit (6000) an HTTP 429 with ``Retry-After`` and code -1003.
  Order endpoints add ``X-MBX-ORDER-COUNT-10S`` and ``-1D``.
* SIGNED endpoints: ``X-MBX-APIKEY`` (-2014 missing, -2015 unknown, HTTP
  401); ``signature`` = hex HMAC-SHA256 of the query string concatenated with
  the body, without the signature itself (-1022); ``timestamp`` accepted when
  ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``
  (default 5000, at most 60000), else -1021; missing parameters -1102.
* ``POST /api/v3/order`` (LIMIT with GTC/IOC/FOK, LIMIT_MAKER, MARKET by
  ``quantity``; ACK/RESULT/FULL answers), ``DELETE /api/v3/order``,
  ``GET /api/v3/order``, ``GET /api/v3/openOrders``, ``GET /api/v3/account``,
  ``GET /api/v3/myTrades`` (by ``symbol``, optionally ``orderId``).
  Refusals: -1121 invalid symbol, -1013 filter failures, -1111 precision,
  -2010 insufficient balance / duplicate / would take (LIMIT_MAKER), -2011
  unknown order on cancel, -2013 order does not exist.
* ``POST/PUT/DELETE /api/v3/userDataStream`` (API key only) and
  ``/ws/<listenKey>``: ``executionReport`` for every order change and
  ``outboundAccountPosition`` after every balance change.

USD-M futures (``binance-usdm``): market data only, the same streams and
``/fapi/v1/ping``, ``time``, ``exchangeInfo`` and ``depth`` (default limit
500, at most 1000, weights 2/5/10/20, 2400 per minute); the snapshot bridges
by the futures rule (``U <= lastUpdateId <= u`` on a diff the client buffered).

Not emulated: USD-M orders and COIN-M, order lists, ``quoteOrderQty``,
STOP orders, self-trade prevention, the WebSocket API, SBE. Commission is
charged in the quote asset at the paper venue's rates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import WSMsgType, web

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS, BinanceFeed, Market
from kernel.book import L2Book
from kernel.bus import Bus
from kernel.emulator.faults import EmulatorStats, FaultPlan
from kernel.emulator.market import ReplayMarket, StringBookSide
from kernel.emulator.matching import EmulatedOrder, Fill, OrderEngine, OrderError
from kernel.emulator.streams import StreamConnection
from tradekernel_sdk.fixedpoint import FixedPointError, from_fixed, to_fixed
from tradekernel_sdk.orders import FEE_PRECISION, OrderSide, OrderType, TimeInForce
from tradekernel_sdk.types import Instrument

__all__ = ["BinanceMarket", "BinanceServer"]

log = logging.getLogger(__name__)

_STREAM_NAME = re.compile(r"^[a-z0-9]+@[A-Za-z0-9_@]+$")
_WEIGHT_LIMIT = 6000
_FUTURES_WEIGHT_LIMIT = 2400
_MAX_RECV_WINDOW = 60_000
_DEFAULT_RECV_WINDOW = 5000
_OPEN_TIMEOUT_S = 10.0
_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_TIF_NAMES = {value: key for key, value in _TIME_IN_FORCE.items()}
_TIF_NAMES[TimeInForce.POST_ONLY] = "GTC"
# Request weights of the endpoints not weighted by their parameters.
_WEIGHTS = {
    "/api/v3/exchangeInfo": 20,
    "/api/v3/account": 20,
    "/api/v3/order": 1,
    "/api/v3/userDataStream": 2,
    "/api/v3/time": 1,
    "/api/v3/ping": 1,
}


class _Book:
    """A symbol's book as Binance sent it, and where the market stands."""

    def __init__(self) -> None:
        self.bids = StringBookSide(descending=True)
        self.asks = StringBookSide(descending=False)
        self.last_update_id = 0
        self.opened = asyncio.Event()
        self.pending: deque[dict[str, Any]] = deque(maxlen=20_000)
        self.opening: tuple[int, StringBookSide, StringBookSide] | None = None

    @property
    def open(self) -> bool:
        return self.opened.is_set()

    def apply(self, data: dict[str, Any]) -> None:
        self.bids.apply(data["b"])
        self.asks.apply(data["a"])
        self.last_update_id = data["u"]

    def open_at(self, snapshot: dict[str, Any]) -> None:
        snapshot_id = snapshot["lastUpdateId"]
        self.bids.load(snapshot["bids"])
        self.asks.load(snapshot["asks"])
        self.last_update_id = snapshot_id
        self.opening = (snapshot_id, self.bids.copy(), self.asks.copy())
        for data in self.pending:
            if data["u"] > self.last_update_id:
                self.apply(data)
        self.pending.clear()
        self.opened.set()


class BinanceMarket(ReplayMarket):
    """Replays Binance spot or USD-M combined-stream recordings (see the module docstring)."""

    def __init__(
        self,
        frames: Iterable[RawFrame],
        *,
        stats: EmulatorStats,
        speed: float | None = None,
        market: Market = "spot",
        instruments: dict[str, Instrument] | None = None,
        passes: int | None = 1,
        reopen: Callable[[], Iterable[RawFrame]] | None = None,
    ) -> None:
        super().__init__(frames, stats=stats, speed=speed, passes=passes, reopen=reopen)
        self.bus = Bus()
        self._market = market
        self._instruments = instruments
        self.feed = BinanceFeed(self.bus, market, instruments=instruments)
        """The kernel's own feed over the replayed frames: the book orders match against."""
        self.books: dict[str, _Book] = {}
        self.streams_seen: set[str] = set()
        self._depth_symbol_by_source: dict[str, str] = {}

    def reset(self) -> None:
        """Forget the books and the matching feed's state before the next pass."""
        self.books = {}
        self._depth_symbol_by_source = {}
        self.feed = BinanceFeed(self.bus, self._market, instruments=self._instruments)

    def live_book(self, symbol: str) -> L2Book | None:
        """Return the matching feed's verified book of ``symbol`` (new after a restart)."""
        return self.feed.book(symbol)

    def book(self, symbol: str) -> _Book:
        """Return the string book of ``symbol`` (created empty on first use)."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = _Book()
        return book

    async def on_frame(self, frame: RawFrame) -> None:
        """Update books and the matching feed, then publish the frame once the market is open."""
        try:
            message = orjson.loads(frame.payload)
        except orjson.JSONDecodeError:
            return
        if type(message) is not dict:
            return
        stream = message.get("stream")
        if type(stream) is str:
            data = message.get("data")
            if type(data) is not dict:
                return
            symbol = stream.partition("@")[0].upper()
            book = self.book(symbol)
            self.feed.on_frame(frame)
            if "@depth" in stream:
                self._depth_symbol_by_source[frame.source] = symbol
                if not book.open:
                    book.pending.append(data)
                    return
                book.apply(data)
            elif not book.open:
                return
            self.streams_seen.add(stream)
            await self.publish(stream, frame.payload)
        elif "lastUpdateId" in message:
            source = frame.source
            if source.startswith("rest:depth:"):
                symbol = source.removeprefix("rest:depth:")
            elif source in self._depth_symbol_by_source:
                symbol = self._depth_symbol_by_source[source]
            else:
                return
            book = self.book(symbol)
            self.feed.on_frame(RawFrame(frame.recv_ns, frame.payload, f"rest:depth:{symbol}"))
            if not book.open:
                book.open_at(message)
                log.info("emulator: %s opens at update id %d", symbol, book.last_update_id)


def _raw_payload(key: str, payload: bytes) -> bytes:
    """Return the ``data`` of a combined-stream envelope, bytes unchanged."""
    start = payload.find(b'"data":')
    if start < 0:
        return payload
    return payload[start + 7 : payload.rstrip().rfind(b"}")]


def _without_signature(text: str) -> str:
    return "&".join(part for part in text.split("&") if not part.startswith("signature="))


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"code": code, "msg": msg}, status, headers)


def _missing(name: str) -> web.Response:
    return _error(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BinanceServer:
    """The Binance spot front end: routes and websocket handlers over a :class:`BinanceMarket`."""

    def __init__(
        self,
        market: BinanceMarket,
        *,
        faults: FaultPlan,
        stats: EmulatorStats,
        api_key: str,
        api_secret: str,
        balances: dict[str, str],
        clock_ms: Callable[[], int],
        weight_limit: int | None = None,
        slow_consumer_s: float = 10.0,
    ) -> None:
        self.market = market
        self.faults = faults
        self.stats = stats
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.clock_ms = clock_ms
        self.futures = market.feed.futures
        self._prefix = "/fapi/v1" if self.futures else "/api/v3"
        self.weight_limit = weight_limit or (
            _FUTURES_WEIGHT_LIMIT if self.futures else _WEIGHT_LIMIT
        )
        self.slow_consumer_s = slow_consumer_s
        self._weight_minute = 0
        self._weight_used = 0
        self._order_times: deque[int] = deque()
        self._orders_today = 0
        self.listen_keys: dict[str, set[StreamConnection]] = {}
        self._connections: set[StreamConnection] = set()
        self.engine = OrderEngine(
            market.bus,
            venue="emulator.binance",
            market_venue=market.feed.venue,
            books=market.live_book,
            instrument=self._instrument,
            clock_ms=clock_ms,
            balances=balances,
        )
        self.engine.order_listeners.append(self._on_order)
        self.engine.balance_listeners.append(self._on_balances)

    def routes(self, app: web.Application) -> None:
        """Add the venue's routes and middleware to ``app``."""
        app.middlewares.append(self._middleware)
        prefix = self._prefix
        app.router.add_get(f"{prefix}/ping", self._ping)
        app.router.add_get(f"{prefix}/time", self._time)
        app.router.add_get(f"{prefix}/exchangeInfo", self._exchange_info)
        app.router.add_get(f"{prefix}/depth", self._depth)
        app.router.add_get("/stream", self._combined_stream)
        app.router.add_get("/ws", self._raw_stream)
        app.router.add_get("/ws/{path:.*}", self._raw_stream)
        if self.futures:
            return  # USD-M: market data only
        app.router.add_post("/api/v3/order", self._signed(self._new_order))
        app.router.add_delete("/api/v3/order", self._signed(self._cancel_order))
        app.router.add_get("/api/v3/order", self._signed(self._query_order))
        app.router.add_get("/api/v3/openOrders", self._signed(self._open_orders))
        app.router.add_get("/api/v3/account", self._signed(self._account))
        app.router.add_get("/api/v3/myTrades", self._signed(self._my_trades))
        app.router.add_post("/api/v3/userDataStream", self._listen_key_new)
        app.router.add_put("/api/v3/userDataStream", self._listen_key_keepalive)
        app.router.add_delete("/api/v3/userDataStream", self._listen_key_close)

    async def close(self) -> None:
        """Close every websocket."""
        for connection in list(self._connections):
            await connection.close(abrupt=False, code=1001, reason="shutdown")
            await connection.stop()

    # -- request weight and faults --------------------------------------------

    def _weight(self, request: web.Request) -> int:
        path = request.path
        if path == "/api/v3/depth":
            limit = int(request.query.get("limit", "100") or 100)
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        if path == "/fapi/v1/depth":
            limit = int(request.query.get("limit", "500") or 500)
            return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        if path == "/api/v3/openOrders":
            return 6 if "symbol" in request.query else 80
        if path == "/api/v3/myTrades":
            return 5 if "orderId" in request.query else 20
        return _WEIGHTS.get(path, 1)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(("/api/", "/fapi/")):
            return await handler(request)
        self.stats.rest_requests += 1
        now = self.clock_ms()
        minute = now // 60_000
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        retry_after = str(max(1, 60 - (now // 1000) % 60))
        answer = self.faults.take_rate_limit(request.path)
        if answer is not None:
            headers = {
                "Retry-After": str(answer.retry_after),
                "X-MBX-USED-WEIGHT-1M": str(self._weight_used),
            }
            if answer.status == 418:
                banned_until = now + answer.retry_after * 1000
                msg = (
                    f"Way too much request weight used; IP banned until {banned_until}. "
                    "Please use WebSocket Streams for live updates to avoid bans."
                )
            else:
                msg = (
                    f"Too much request weight used; current limit is {self.weight_limit} "
                    "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                    "updates to avoid polling the API."
                )
            return _error(answer.status, -1003, msg, headers)
        try:
            self._weight_used += self._weight(request)
        except ValueError:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._weight_used)}
        if self._weight_used > self.weight_limit:
            self.stats.rate_limited += 1
            headers["Retry-After"] = retry_after
            return _error(
                429,
                -1003,
                f"Too much request weight used; current limit is {self.weight_limit} request "
                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                "polling the API.",
                headers,
            )
        try:
            response = await handler(request)
        except _Refusal as refusal:
            response = refusal.response
        response.headers.update(headers)
        return response

    # -- public endpoints ------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def _time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.clock_ms()})

    def _instrument(self, symbol: str) -> Instrument | None:
        instrument = self.market.feed.instrument(symbol)
        if instrument is None:
            instrument = KNOWN_INSTRUMENTS[self.market.feed.venue].get(symbol)
        return instrument

    def _symbols(self) -> list[str]:
        return sorted(set(self.market.books) | set(KNOWN_INSTRUMENTS[self.market.feed.venue]))

    async def _exchange_info(self, request: web.Request) -> web.Response:
        wanted = request.query.get("symbol")
        names = [wanted] if wanted else self._symbols()
        symbols = []
        for name in names:
            instrument = self._instrument(name)
            if instrument is None:
                return _error(400, -1121, "Invalid symbol.")
            symbols.append(
                _futures_symbol_info(instrument) if self.futures else _symbol_info(instrument)
            )
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.clock_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.weight_limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": 200000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        if not symbol:
            return _missing("symbol")
        try:
            default = "500" if self.futures else "100"
            limit = min(int(request.query.get("limit", default)), 1000 if self.futures else 5000)
        except ValueError:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
        if symbol not in self.market.books and self._instrument(symbol) is None:
            return _error(400, -1121, "Invalid symbol.")
        book = self.market.book(symbol)
        if not book.open:
            self.market.start()
            try:
                await asyncio.wait_for(book.opened.wait(), _OPEN_TIMEOUT_S)
            except TimeoutError:
                return _error(
                    503,
                    -1008,
                    "Server is currently overloaded with other requests. "
                    "Please try again in a few minutes.",
                )
        self.stats.snapshots_served += 1
        if self.faults.take_stale_snapshot() and book.opening is not None:
            update_id, bids, asks = book.opening
        else:
            update_id, bids, asks = book.last_update_id, book.bids, book.asks
        return _json(
            {"lastUpdateId": update_id, "bids": bids.best(limit), "asks": asks.best(limit)}
        )

    # -- market-data streams ---------------------------------------------------

    async def _combined_stream(self, request: web.Request) -> web.StreamResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._stream(request, streams, combined=True)

    async def _raw_stream(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "")
        if path in self.listen_keys:
            return await self._user_stream(request, path)
        # ccxt connects to /ws/<n> (n counts its connections) and subscribes by
        # message; Binance accepts such a path as a connection with no streams.
        streams = [s for s in path.split("/") if s and not s.isdigit()]
        return await self._stream(request, streams, combined=False)

    def _connect(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        combined: bool,
        user_data: bool = False,
    ) -> StreamConnection:
        connection = StreamConnection(
            ws,
            request,
            faults=self.faults,
            stats=self.stats,
            encode=None if combined else _raw_payload,
            slow_consumer_s=self.slow_consumer_s,
            user_data=user_data,
        )
        self._connections.add(connection)
        self.stats.connections += 1
        return connection

    async def _stream(
        self, request: web.Request, streams: list[str], *, combined: bool
    ) -> web.StreamResponse:
        bad = [s for s in streams if not _STREAM_NAME.match(s)]
        if bad:
            return _error(400, -1100, f"Invalid stream name {bad[0]!r}.")
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        connection = self._connect(request, ws, combined=combined)
        for stream in streams:
            self.market.subscribe(connection, stream)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._on_request(connection, message.data)
        finally:
            self.market.forget(connection)
            self._connections.discard(connection)
            await connection.stop()
        return ws

    def _on_request(self, connection: StreamConnection, text: str) -> None:
        """Answer a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            reply = {"error": {"code": 3, "msg": f"Invalid JSON: {error}"}, "id": None}
            connection.push_control(orjson.dumps(reply))
            return
        if type(request) is not dict:
            reply = {"error": {"code": 2, "msg": "Invalid request: expected an object"}, "id": None}
            connection.push_control(orjson.dumps(reply))
            return
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        result: Any = None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if type(params) is not list or not all(
                type(p) is str and _STREAM_NAME.match(p) for p in params
            ):
                reply = {
                    "error": {"code": 2, "msg": "Invalid request: invalid stream name"},
                    "id": request_id,
                }
                connection.push_control(orjson.dumps(reply))
                return
            for stream in params:
                if method == "SUBSCRIBE":
                    self.market.subscribe(connection, stream)
                else:
                    self.market.unsubscribe(connection, stream)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(connection.keys)
        else:
            reply = {
                "error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                "id": request_id,
            }
            connection.push_control(orjson.dumps(reply))
            return
        connection.push_control(orjson.dumps({"result": result, "id": request_id}))

    # -- signed endpoints ------------------------------------------------------

    def _signed(
        self, handler: Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]
    ) -> Handler:
        async def checked(request: web.Request) -> web.Response:
            params = await self._authenticate(request)
            return await handler(request, params)

        return checked

    def _check_api_key(self, request: web.Request) -> None:
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not api_key:
            raise _Refusal(_error(401, -2014, "API-key format invalid."))
        if not hmac.compare_digest(api_key, self.api_key):
            raise _Refusal(_error(401, -2015, "Invalid API-key, IP, or permissions for action."))

    async def _authenticate(self, request: web.Request) -> dict[str, str]:
        self._check_api_key(request)
        query = request.raw_path.partition("?")[2]
        body = (await request.read()).decode("utf-8", "replace")
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = params.pop("signature", "")
        if not signature:
            raise _Refusal(_missing("signature"))
        signed_text = _without_signature(query) + _without_signature(body)
        expected = hmac.new(self._secret, signed_text.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            self.stats.signature_rejections += 1
            raise _Refusal(_error(400, -1022, "Signature for this request is not valid."))
        timestamp_text = params.get("timestamp", "")
        if not timestamp_text.isdigit():
            raise _Refusal(_missing("timestamp"))
        recv_window_text = params.get("recvWindow", str(_DEFAULT_RECV_WINDOW))
        if not recv_window_text.isdigit():
            raise _Refusal(_missing("recvWindow"))
        recv_window = int(recv_window_text)
        if recv_window > _MAX_RECV_WINDOW:
            raise _Refusal(_error(400, -1131, "recvWindow must be less than 60000"))
        timestamp = int(timestamp_text)
        now = self.clock_ms()
        if timestamp >= now + 1000:
            self.stats.timestamp_rejections += 1
            raise _Refusal(
                _error(
                    400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
                )
            )
        if now - timestamp > recv_window:
            self.stats.timestamp_rejections += 1
            raise _Refusal(
                _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
            )
        return params

    def _order_count_headers(self) -> dict[str, str]:
        now = self.clock_ms()
        times = self._order_times
        while times and times[0] <= now - 10_000:
            times.popleft()
        return {
            "X-MBX-ORDER-COUNT-10S": str(len(times)),
            "X-MBX-ORDER-COUNT-1D": str(self._orders_today),
        }

    async def _new_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._order_times.append(self.clock_ms())
        self._orders_today += 1
        self.stats.orders += 1
        headers = self._order_count_headers()
        try:
            response = self._place(params)
        except _Refusal as refusal:
            self.stats.orders_rejected += 1
            refusal.response.headers.update(headers)
            return refusal.response
        response.headers.update(headers)
        return response

    def _place(self, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _Refusal(_missing("symbol"))
        instrument = self._instrument(symbol)
        if instrument is None or symbol not in self.market.books:
            raise _Refusal(_error(400, -1121, "Invalid symbol."))
        side_text = params.get("side", "")
        if side_text not in ("BUY", "SELL"):
            raise _Refusal(
                _missing("side") if not side_text else _error(400, -1117, "Invalid side.")
            )
        type_text = params.get("type", "")
        if type_text not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise _Refusal(
                _missing("type") if not type_text else _error(400, -1116, "Invalid orderType.")
            )
        quantity = self._decimal_param(params, "quantity", instrument.size_precision)
        price: int | None = None
        tif = TimeInForce.GTC
        order_type = OrderType.MARKET
        if type_text in ("LIMIT", "LIMIT_MAKER"):
            order_type = OrderType.LIMIT
            price = self._decimal_param(params, "price", instrument.price_precision)
            if type_text == "LIMIT_MAKER":
                tif = TimeInForce.POST_ONLY
            else:
                tif_text = params.get("timeInForce", "")
                if not tif_text:
                    raise _Refusal(_missing("timeInForce"))
                if tif_text not in _TIME_IN_FORCE:
                    raise _Refusal(_error(400, -1115, "Invalid timeInForce."))
                tif = _TIME_IN_FORCE[tif_text]
        elif "price" in params:
            raise _Refusal(_error(400, -1106, "Parameter 'price' sent when not required."))
        reject = self.faults.take_order_reject()
        if reject is not None:
            raise _Refusal(_error(400, int(reject.code), reject.msg))
        client_id = params.get("newClientOrderId") or secrets.token_urlsafe(16)
        try:
            order = self.engine.place(
                symbol,
                side=OrderSide[side_text],
                order_type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=tif,
                client_order_id=client_id,
            )
        except OrderError as error:
            raise _Refusal(_order_error(error)) from None
        answer_type = params.get("newOrderRespType", "FULL")
        body = _order_fields(order, ack=True)
        if answer_type != "ACK":
            body.update(_order_fields(order))
            body.pop("time", None)
            body.pop("updateTime", None)
            body.pop("isWorking", None)
            body.pop("stopPrice", None)
            body.pop("icebergQty", None)
            body.pop("origQuoteOrderQty", None)
            if answer_type == "FULL":
                body["fills"] = [_fill_fields(order, fill) for fill in order.fills]
        return _json(body)

    def _decimal_param(self, params: dict[str, str], name: str, precision: int) -> int:
        text = params.get(name, "")
        if not text:
            raise _Refusal(_missing(name))
        try:
            value = to_fixed(text, precision)
        except FixedPointError:
            raise _Refusal(
                _error(400, -1111, f"Parameter '{name}' has too much precision.")
            ) from None
        if value <= 0:
            raise _Refusal(_error(400, -1013, f"Invalid {name}."))
        return value

    def _find(self, params: dict[str, str]) -> EmulatedOrder | None:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _Refusal(_missing("symbol"))
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise _Refusal(
                _error(
                    400,
                    -1102,
                    "Param 'origClientOrderId' or 'orderId' must be "
                    "sent, but both were empty/null!",
                )
            )
        if order_id:
            if not order_id.isdigit():
                raise _Refusal(_missing("orderId"))
            return self.engine.find(symbol, order_id=int(order_id))
        return self.engine.find(symbol, client_order_id=client_id)

    async def _cancel_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self._find(params)
        if order is None or not order.open:
            return _error(400, -2011, "Unknown order sent.")
        self.engine.cancel(order)
        body = {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": params.get("newClientOrderId") or secrets.token_urlsafe(16),
            "transactTime": self.clock_ms(),
        }
        fields = _order_fields(order)
        for name in (
            "time",
            "updateTime",
            "isWorking",
            "stopPrice",
            "icebergQty",
            "origQuoteOrderQty",
            "clientOrderId",
            "orderId",
            "orderListId",
            "symbol",
            "workingTime",
        ):
            fields.pop(name, None)
        body.update(fields)
        return _json(body)

    async def _query_order(self, request: web.Request, params: dict[str, str]) -> web.Response:
        order = self._find(params)
        if order is None:
            return _error(400, -2013, "Order does not exist.")
        return _json(_order_fields(order))

    async def _open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol")
        return _json([_order_fields(order) for order in self.engine.open_orders(symbol)])

    async def _my_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _Refusal(_missing("symbol"))
        order_id = params.get("orderId", "")
        if order_id and not order_id.isdigit():
            raise _Refusal(_missing("orderId"))
        trades: list[dict[str, Any]] = [
            {
                "symbol": order.symbol,
                "id": fill.trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": order.price_text(fill.price),
                "qty": order.size_text(fill.quantity),
                "quoteQty": order.quote_text(fill.price * fill.quantity),
                "commission": from_fixed(fill.fee, FEE_PRECISION),
                "commissionAsset": order.instrument.quote,
                "time": fill.time_ms,
                "isBuyer": order.side is OrderSide.BUY,
                "isMaker": fill.maker,
                "isBestMatch": True,
            }
            for order in self.engine.orders_of(symbol)
            if not order_id or order.order_id == int(order_id)
            for fill in order.fills
        ]
        trades.sort(key=lambda trade: trade["id"])
        return _json(trades)

    async def _account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        engine = self.engine
        return _json(
            {
                "makerCommission": int(engine.fees.maker_bps),
                "takerCommission": int(engine.fees.taker_bps),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.clock_ms(),
                "accountType": "SPOT",
                "balances": [
                    {
                        "asset": asset,
                        "free": _amount(engine.free[asset]),
                        "locked": _amount(engine.locked[asset]),
                    }
                    for asset in sorted(engine.free)
                ],
                "permissions": ["SPOT"],
            }
        )

    # -- user data -------------------------------------------------------------

    async def _listen_key_new(self, request: web.Request) -> web.Response:
        self._check_api_key(request)
        if self.listen_keys:
            return _json({"listenKey": next(iter(self.listen_keys))})  # one per account
        key = secrets.token_urlsafe(48)[:64]
        self.listen_keys[key] = set()
        return _json({"listenKey": key})

    async def _listen_key_param(self, request: web.Request) -> str:
        self._check_api_key(request)
        body = (await request.read()).decode("utf-8", "replace")
        params = dict(parse_qsl(request.raw_path.partition("?")[2]))
        params.update(parse_qsl(body))
        key = params.get("listenKey", "")
        if not key:
            raise _Refusal(_missing("listenKey"))
        if key not in self.listen_keys:
            raise _Refusal(_error(400, -1125, "This listenKey does not exist."))
        return key

    async def _listen_key_keepalive(self, request: web.Request) -> web.Response:
        await self._listen_key_param(request)
        return _json({})

    async def _listen_key_close(self, request: web.Request) -> web.Response:
        key = await self._listen_key_param(request)
        for connection in self.listen_keys.pop(key):
            await connection.close(abrupt=False, code=1000, reason="listenKey closed")
        return _json({})

    async def _user_stream(self, request: web.Request, key: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        connection = self._connect(request, ws, combined=True, user_data=True)
        self.listen_keys[key].add(connection)
        try:
            async for _ in ws:
                pass
        finally:
            self.listen_keys.get(key, set()).discard(connection)
            self._connections.discard(connection)
            await connection.stop()
        return ws

    def _user_connections(self) -> list[StreamConnection]:
        return [c for conns in self.listen_keys.values() for c in conns if not c.closed]

    def _on_order(self, order: EmulatedOrder, execution: str, fill: Fill | None) -> None:
        if execution == "REJECTED":
            return  # refused over REST, never reported on the stream
        if fill is not None:
            self.stats.fills += 1
        connections = self._user_connections()
        if not connections:
            return
        payload = orjson.dumps(_execution_report(order, execution, fill, self.clock_ms()))
        for connection in connections:
            connection.push_control(payload)

    def _on_balances(self, assets: list[str]) -> None:
        connections = self._user_connections()
        if not connections:
            return
        now = self.clock_ms()
        engine = self.engine
        payload = orjson.dumps(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {
                        "a": asset,
                        "f": _amount(engine.free[asset]),
                        "l": _amount(engine.locked[asset]),
                    }
                    for asset in assets
                ],
            }
        )
        for connection in connections:
            connection.push_control(payload)


# -- wire shapes ---------------------------------------------------------------


def _amount(value: Any) -> str:
    return f"{value:.8f}"


def _symbol_info(instrument: Instrument) -> dict[str, Any]:
    price_precision = instrument.price_precision
    size_precision = instrument.size_precision
    return {
        "symbol": instrument.symbol,
        "status": "TRADING",
        "baseAsset": instrument.base,
        "baseAssetPrecision": size_precision,
        "quoteAsset": instrument.quote,
        "quotePrecision": price_precision,
        "quoteAssetPrecision": price_precision,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": from_fixed(instrument.tick, price_precision),
                "maxPrice": "1000000.00000000",
                "tickSize": from_fixed(instrument.tick, price_precision),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": from_fixed(instrument.lot, size_precision),
                "maxQty": "9000.00000000",
                "stepSize": from_fixed(instrument.lot, size_precision),
            },
        ],
        "permissions": ["SPOT"],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _futures_symbol_info(instrument: Instrument) -> dict[str, Any]:
    price_precision = instrument.price_precision
    size_precision = instrument.size_precision
    return {
        "symbol": instrument.symbol,
        "pair": instrument.symbol,
        "contractType": "PERPETUAL",
        "status": "TRADING",
        "baseAsset": instrument.base,
        "quoteAsset": instrument.quote,
        "marginAsset": instrument.quote,
        "pricePrecision": price_precision,
        "quantityPrecision": size_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": from_fixed(instrument.tick, price_precision),
                "maxPrice": "4529764",
                "tickSize": from_fixed(instrument.tick, price_precision),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": from_fixed(instrument.lot, size_precision),
                "maxQty": "1000",
                "stepSize": from_fixed(instrument.lot, size_precision),
            },
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _order_type_name(order: EmulatedOrder) -> str:
    if order.order_type is OrderType.MARKET:
        return "MARKET"
    return "LIMIT_MAKER" if order.time_in_force is TimeInForce.POST_ONLY else "LIMIT"


def _order_fields(order: EmulatedOrder, *, ack: bool = False) -> dict[str, Any]:
    if ack:
        return {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.created_ms,
        }
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": order.price_text(order.price),
        "origQty": order.size_text(order.quantity),
        "executedQty": order.size_text(order.executed),
        "cummulativeQuoteQty": order.quote_text(order.quote_executed),
        "status": order.status,
        "timeInForce": _TIF_NAMES[order.time_in_force],
        "type": _order_type_name(order),
        "side": order.side.name,
        "stopPrice": order.price_text(0),
        "icebergQty": order.size_text(0),
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": order.open,
        "workingTime": order.created_ms,
        "origQuoteOrderQty": order.price_text(0),
        "selfTradePreventionMode": "NONE",
    }


def _fill_fields(order: EmulatedOrder, fill: Fill) -> dict[str, Any]:
    return {
        "price": order.price_text(fill.price),
        "qty": order.size_text(fill.quantity),
        "commission": from_fixed(fill.fee, FEE_PRECISION),
        "commissionAsset": order.instrument.quote,
        "tradeId": fill.trade_id,
    }


def _execution_report(
    order: EmulatedOrder, execution: str, fill: Fill | None, now: int
) -> dict[str, Any]:
    return {
        "e": "executionReport",
        "E": now,
        "s": order.symbol,
        "c": order.client_order_id,
        "S": order.side.name,
        "o": _order_type_name(order),
        "f": _TIF_NAMES[order.time_in_force],
        "q": order.size_text(order.quantity),
        "p": order.price_text(order.price),
        "P": order.price_text(0),
        "F": order.size_text(0),
        "g": -1,
        "C": "",
        "x": execution,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": order.size_text(fill.quantity if fill else 0),
        "z": order.size_text(order.executed),
        "L": order.price_text(fill.price if fill else 0),
        "n": from_fixed(fill.fee if fill else 0, FEE_PRECISION),
        "N": order.instrument.quote if fill else None,
        "T": fill.time_ms if fill else order.updated_ms,
        "t": fill.trade_id if fill else -1,
        "I": order.order_id * 2 + (1 if fill else 0),
        "w": order.open,
        "m": fill.maker if fill else False,
        "M": False,
        "O": order.created_ms,
        "Z": order.quote_text(order.quote_executed),
        "Y": order.quote_text(fill.price * fill.quantity if fill else 0),
        "Q": order.price_text(0),
        "W": order.created_ms,
        "V": "NONE",
    }


def _order_error(error: OrderError) -> web.Response:
    detail = error.detail
    if error.kind == "insufficient_balance":
        return _error(400, -2010, "Account has insufficient balance for requested action.")
    if error.kind == "duplicate":
        return _error(400, -2010, "Duplicate order sent.")
    if error.kind == "unknown_symbol":
        return _error(400, -1121, "Invalid symbol.")
    if "lot size" in detail:
        return _error(400, -1013, "Filter failure: LOT_SIZE")
    if "tick" in detail:
        return _error(400, -1013, "Filter failure: PRICE_FILTER")
    if "post-only" in detail:
        return _error(400, -2010, "Order would immediately match and take.")
    return _error(400, -2010, f"Order rejected: {detail}")


def server_time_ms(offset_ms: int) -> int:
    """Return the wall clock in milliseconds, shifted by ``offset_ms``."""
    return time.time_ns() // 1_000_000 + offset_ms
