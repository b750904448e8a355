"""Signed REST to Binance: signing, the venue's clock, request weights and order counts.

* **Signing.** ``signature`` is the hex HMAC-SHA256, keyed by the secret, of
  the exact query string sent, appended last; the key goes in
  ``X-MBX-APIKEY``. Keys, the secret and signatures are never logged.
* **Timing.** ``timestamp`` is the local clock plus the measured offset to the
  venue's clock (``GET time``, taken at the midpoint of the round trip), with
  ``recvWindow``. A ``-1021`` answer re-measures the offset and the request is
  sent once more.
* **Limits.** Request weight per endpoint, the order counts of 10 s and one
  day, the venue's ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-*`` echoes
  taken as the truth; 429 and 418 answers block every call for
  ``Retry-After``, and a 429 without it on a new order (the unfilled-order
  count) blocks new orders for the 10 s window.
* **Unknown outcomes.** A timeout, a dropped connection, a 5xx answer or the
  codes ``-1006`` / ``-1007`` ("execution status unknown") raise
  :class:`OutcomeUnknownError`, never a refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from kernel.live.credentials import ApiKey, VenueCredentials
from kernel.live.venue_clock import OutcomeUnknownError, VenueClock
from kernel.live.weights import WeightLimiter

__all__ = [
    "ERROR_MEANINGS",
    "SPOT",
    "USDM",
    "BinanceRest",
    "OrderApi",
    "OutcomeUnknownError",
    "VenueClock",
    "VenueError",
    "rejection_reason",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderApi:
    """Where one Binance market takes orders, and what each call weighs."""

    rest_url: str
    ws_url: str
    order_path: str
    open_orders_path: str
    trades_path: str
    time_path: str
    listen_key_path: str
    weight_per_minute: int
    order_counts: tuple[tuple[str, int, float], ...]
    """(response header, limit, window in seconds) of each order-count limit."""
    futures: bool = False
    """USD-M: post-only is GTX, no FULL answers, positions instead of balances."""
    account_path: str = ""
    """Spot: balances, compared with the kernel's positions."""
    positions_path: str = ""
    """Futures: positions, compared with the kernel's."""
    # Request weight by (method, path); a few depend on their parameters (see weight()).
    weights: Mapping[tuple[str, str], int] = field(default_factory=dict)
    open_orders_weights: tuple[int, int] = (6, 80)
    """Weight of the open-orders call with a symbol, and without."""
    trades_weights: tuple[int, int] = (5, 20)
    """Weight of the trade list by order id, and without."""

    def weight(self, method: str, path: str, params: Mapping[str, str]) -> int:
        """Return the documented request weight of one call."""
        if path == self.open_orders_path:
            with_symbol, without = self.open_orders_weights
            return with_symbol if "symbol" in params else without
        if path == self.trades_path:
            by_order, without = self.trades_weights
            return by_order if "orderId" in params else without
        return self.weights.get((method, path), 1)


SPOT = OrderApi(
    rest_url="https://api.binance.com",
    ws_url="wss://stream.binance.com:9443",
    order_path="/api/v3/order",
    open_orders_path="/api/v3/openOrders",
    account_path="/api/v3/account",
    trades_path="/api/v3/myTrades",
    time_path="/api/v3/time",
    listen_key_path="/api/v3/userDataStream",
    weight_per_minute=6000,
    order_counts=(
        ("X-MBX-ORDER-COUNT-10S", 100, 10.0),
        ("X-MBX-ORDER-COUNT-1D", 200_000, 86_400.0),
    ),
    weights={
        ("POST", "/api/v3/order"): 1,
        ("DELETE", "/api/v3/order"): 1,
        ("GET", "/api/v3/order"): 4,
        ("GET", "/api/v3/account"): 20,
        ("GET", "/api/v3/time"): 1,
        ("POST", "/api/v3/userDataStream"): 2,
        ("PUT", "/api/v3/userDataStream"): 2,
        ("DELETE", "/api/v3/userDataStream"): 2,
    },
)
"""Binance spot (``/api/v3``)."""

USDM = OrderApi(
    rest_url="https://fapi.binance.com",
    ws_url="wss://fstream.binance.com",
    order_path="/fapi/v1/order",
    open_orders_path="/fapi/v1/openOrders",
    trades_path="/fapi/v1/userTrades",
    time_path="/fapi/v1/time",
    listen_key_path="/fapi/v1/listenKey",
    weight_per_minute=2400,
    order_counts=(("X-MBX-ORDER-COUNT-10S", 300, 10.0), ("X-MBX-ORDER-COUNT-1M", 1200, 60.0)),
    futures=True,
    positions_path="/fapi/v2/positionRisk",
    weights={
        # New orders weigh nothing on the IP limit, only on the order counts; 1 is the
        # least the limiter can spend.
        ("POST", "/fapi/v1/order"): 1,
        ("DELETE", "/fapi/v1/order"): 1,
        ("GET", "/fapi/v1/order"): 1,
        ("GET", "/fapi/v2/positionRisk"): 5,
        ("GET", "/fapi/v1/time"): 1,
        ("POST", "/fapi/v1/listenKey"): 1,
        ("PUT", "/fapi/v1/listenKey"): 1,
    },
    open_orders_weights=(1, 40),
    trades_weights=(5, 5),
)
"""Binance USD-M futures (``/fapi``)."""

ERROR_MEANINGS: dict[int, str] = {
    -1003: "too much request weight used",
    -1006: "unexpected response, execution status unknown",
    -1007: "timeout, execution status unknown",
    -1013: "filter failure",
    -1015: "too many new orders",
    -1021: "timestamp outside the recvWindow",
    -1022: "invalid signature",
    -1102: "a mandatory parameter is missing or malformed",
    -1111: "too much precision",
    -1121: "invalid symbol",
    -1125: "the listen key does not exist",
    -2010: "new order rejected",
    -2011: "cancel rejected",
    -2013: "order does not exist",
    -2014: "API key format invalid",
    -2015: "invalid API key, IP or permissions",
    -2019: "margin is insufficient",
    -2022: "reduce-only order rejected",
    -4164: "order notional too small",
    -5022: "post-only order would take",
}
"""What the venue's error codes mean (the spot "Error codes" page)."""

_TIMESTAMP_ERROR = -1021
# "Execution status unknown" (UNEXPECTED_RESP, TIMEOUT): the request may have taken effect.
_STATUS_UNKNOWN = frozenset({-1006, -1007})


def rejection_reason(code: int, message: str) -> str:
    """Return the reason the order manager records for a venue error."""
    meaning = ERROR_MEANINGS.get(code, "venue error")
    return f"binance {code} ({meaning}): {message}"


class VenueError(Exception):
    """The venue refused a request: its HTTP status, error code and message."""

    def __init__(self, status: int, code: int, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(rejection_reason(code, message))
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def rate_limited(self) -> bool:
        """Return whether this was a 429 (too many requests) or 418 (banned) answer."""
        return self.status in (418, 429)


class BinanceRest:
    """Signed and public REST calls to one Binance market, paced by its limits."""

    def __init__(
        self,
        api: OrderApi,
        credentials: VenueCredentials,
        *,
        rest_url: str | None = None,
        recv_window_ms: int = 5000,
        max_retry_wait_s: float = 5.0,
        timeout_s: float = 10.0,
        clock: VenueClock | None = None,
    ) -> None:
        if not 0 < recv_window_ms <= 60_000:
            raise ValueError(f"recv_window_ms must be in 1..60000, got {recv_window_ms}")
        self.api = api
        self.credentials = credentials
        self.base_url = (rest_url or api.rest_url).rstrip("/")
        self.recv_window_ms = recv_window_ms
        self.max_retry_wait_s = max_retry_wait_s
        self.clock = clock if clock is not None else VenueClock()
        self.weights = WeightLimiter(api.weight_per_minute, 60.0)
        self.order_counts = {
            header: WeightLimiter(limit, interval) for header, limit, interval in api.order_counts
        }
        """The order-count limits by the header that echoes each."""
        self.rate_limited = 0
        self.timestamp_retries = 0
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the HTTP session (idempotent)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    @property
    def is_open(self) -> bool:
        """Return whether calls can be made (between :meth:`open` and :meth:`close`)."""
        return self._http is not None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def sync_clock(self) -> None:
        """Measure the venue's clock offset (``GET time``, midpoint of the round trip)."""
        sent = time.time_ns() // 1_000_000
        body = await self.call("GET", self.api.time_path)
        received = time.time_ns() // 1_000_000
        self.clock.observe(sent, int(body["serverTime"]), received)
        log.info(
            "binance clock offset %+d ms (round trip %d ms)",
            self.clock.offset_ms,
            self.clock.round_trip_ms,
        )

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        keys: ApiKey | None = None,
        signed: bool = False,
        new_order: bool = False,
    ) -> Any:
        """Send one request; raise :class:`VenueError` or :class:`OutcomeUnknownError`.

        A ``-1021`` answer re-measures the clock and sends the request once more.
        """
        try:
            return await self._send(method, path, params, keys, signed=signed, new_order=new_order)
        except VenueError as error:
            if error.code != _TIMESTAMP_ERROR or not signed:
                raise
        self.timestamp_retries += 1
        log.warning("binance %s %s: timestamp refused, measuring the clock again", method, path)
        await self.sync_clock()
        return await self._send(method, path, params, keys, signed=signed, new_order=new_order)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        keys: ApiKey | None,
        *,
        signed: bool,
        new_order: bool,
    ) -> Any:
        http = self._http
        if http is None:
            raise RuntimeError("BinanceRest.open() was not awaited")
        fields = dict(params or {})
        await self.weights.acquire(self.api.weight(method, path, fields))
        if new_order:
            for limiter in self.order_counts.values():
                await limiter.acquire(1)
        headers = {}
        if keys is not None:
            headers["X-MBX-APIKEY"] = keys.key.reveal()
        if signed:
            assert keys is not None
            fields["recvWindow"] = str(self.recv_window_ms)
            fields["timestamp"] = str(self.clock.now_ms())
        query = urlencode(fields)
        if signed:
            assert keys is not None
            digest = hmac.new(keys.secret.reveal().encode(), query.encode(), hashlib.sha256)
            query = f"{query}&signature={digest.hexdigest()}"
        url = f"{self.base_url}{path}?{query}" if query else f"{self.base_url}{path}"
        try:
            async with http.request(method, url, headers=headers) as response:
                self._observe_limits(response.headers)
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutcomeUnknownError(f"{method} {path}: {type(exc).__name__}") from None
        if status in (418, 429):
            if retry_after.isdigit():
                wait = float(retry_after)
                self.weights.block_for(wait)
            elif new_order and status == 429:
                # The unfilled-order count is over its limit: a 429 without Retry-After,
                # and only new orders wait (for the 10 s window).
                shortest = min(self.order_counts.values(), key=lambda limit: limit.interval_s)
                wait = shortest.interval_s
                shortest.block_for(wait)
            else:
                wait = 60.0
                self.weights.block_for(wait)
            self.rate_limited += 1
            log.warning("binance %s %s: HTTP %d, no calls for %.0f s", method, path, status, wait)
            code, message = _error_fields(body)
            raise VenueError(status, code, message, retry_after_s=wait)
        if status >= 500:
            raise OutcomeUnknownError(f"{method} {path}: HTTP {status}")
        if status != 200:
            code, message = _error_fields(body)
            if code in _STATUS_UNKNOWN:
                raise OutcomeUnknownError(f"{method} {path}: {rejection_reason(code, message)}")
            raise VenueError(status, code, message)
        return orjson.loads(body)

    def _observe_limits(self, headers: Mapping[str, str]) -> None:
        for name, limiter in (
            ("X-MBX-USED-WEIGHT-1M", self.weights),
            *self.order_counts.items(),
        ):
            value = headers.get(name, "")
            if value.isdigit():
                limiter.observe_used(int(value))


def _error_fields(body: bytes) -> tuple[int, str]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, body[:200].decode("utf-8", "replace")
    if isinstance(parsed, dict):
        return int(parsed.get("code", 0)), str(parsed.get("msg", ""))
    return 0, str(parsed)[:200]
