"""Signed REST to OKX v5: signing, the venue's clock, per-endpoint rate limits, answers.

* **Signing.** ``OK-ACCESS-SIGN`` is the base64 HMAC-SHA256, keyed by the
  secret, of timestamp + method + request path (with its query string) +
  body; ``OK-ACCESS-TIMESTAMP`` is ISO 8601 UTC with milliseconds, and the key
  and passphrase travel in ``OK-ACCESS-KEY`` and ``OK-ACCESS-PASSPHRASE``.
  Keys, the secret, the passphrase and signatures are never logged.
* **Timing.** Timestamps are the local clock plus the offset measured from
  ``GET /api/v5/public/time`` (midpoint of the round trip). OKX refuses a
  timestamp more than 30 s away from its clock with ``50102``: the offset is
  measured again and the request sent once more.
* **Limits.** Each endpoint has its own budget per 2 s; placing, cancelling
  and looking up an order count per instrument. A ``50011`` answer (HTTP 429)
  blocks that budget for a whole window, since OKX sends no ``Retry-After``.
* **Answers.** Every answer is ``{"code", "msg", "data"}``; ``code`` "0" is
  success. A single order's refusal is ``code`` "1" with ``sCode``/``sMsg`` in
  ``data[0]``. A timeout, a lost connection, HTTP 5xx or the codes that say
  the outcome is unknown raise :class:`OutcomeUnknownError`, never a refusal.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from kernel.live.credentials import ApiKey
from kernel.live.venue_clock import OutcomeUnknownError, VenueClock

__all__ = [
    "CANCEL_PATH",
    "ENDPOINT_LIMITS",
    "ERROR_MEANINGS",
    "FILLS_PATH",
    "ORDER_PATH",
    "PENDING_PATH",
    "REST_URL",
    "TIME_PATH",
    "EndpointLimit",
    "OkxRest",
    "OkxVenueError",
    "OutcomeUnknownError",
    "RateLimits",
    "SlidingWindow",
    "VenueClock",
    "iso_timestamp",
    "rejection_reason",
    "sign",
]

log = logging.getLogger(__name__)

REST_URL = "https://www.okx.com"
ORDER_PATH = "/api/v5/trade/order"
CANCEL_PATH = "/api/v5/trade/cancel-order"
PENDING_PATH = "/api/v5/trade/orders-pending"
FILLS_PATH = "/api/v5/trade/fills"
TIME_PATH = "/api/v5/public/time"


@dataclass(frozen=True)
class EndpointLimit:
    """A documented rate limit: ``requests`` per ``interval_s``, per instrument or not."""

    requests: int
    interval_s: float
    per_instrument: bool = False


ENDPOINT_LIMITS: Mapping[tuple[str, str], EndpointLimit] = {
    ("POST", ORDER_PATH): EndpointLimit(60, 2.0, per_instrument=True),
    ("POST", CANCEL_PATH): EndpointLimit(60, 2.0, per_instrument=True),
    ("GET", ORDER_PATH): EndpointLimit(60, 2.0, per_instrument=True),
    ("GET", PENDING_PATH): EndpointLimit(60, 2.0),
    ("GET", FILLS_PATH): EndpointLimit(60, 2.0),
    ("GET", TIME_PATH): EndpointLimit(10, 2.0),
}
"""OKX's limits by (method, path), from each endpoint's "Rate Limit" line."""

ERROR_MEANINGS: dict[str, str] = {
    "50001": "service temporarily unavailable",
    "50004": "endpoint request timeout, outcome unknown",
    "50011": "rate limit reached",
    "50013": "system busy",
    "50026": "system error",
    "50102": "timestamp request expired",
    "50103": "OK-ACCESS-KEY missing",
    "50104": "OK-ACCESS-PASSPHRASE missing",
    "50105": "OK-ACCESS-PASSPHRASE incorrect",
    "50106": "OK-ACCESS-SIGN missing",
    "50107": "OK-ACCESS-TIMESTAMP missing",
    "50111": "invalid OK-ACCESS-KEY",
    "50112": "invalid OK-ACCESS-TIMESTAMP",
    "50113": "invalid signature",
    "51000": "parameter error",
    "51001": "instrument does not exist",
    "51006": "price outside the price limit",
    "51008": "insufficient balance",
    "51016": "duplicated client order id",
    "51020": "order amount below the minimum",
    "51121": "quantity not a multiple of the lot size",
    "51137": "buy price above the highest limit",
    "51138": "sell price below the lowest limit",
    "51400": "cancel failed: the order is filled, canceled or does not exist",
    "51603": "order does not exist",
}
"""What the venue's error codes mean (the v5 "Error Code" section)."""

TIMESTAMP_EXPIRED = "50102"
RATE_LIMITED = "50011"
ORDER_DOES_NOT_EXIST = "51603"
# The request may have taken effect: look the order up, never call it refused.
OUTCOME_UNKNOWN_CODES = frozenset({"50001", "50004", "50013", "50026"})


def rejection_reason(code: str, message: str) -> str:
    """Return the reason the order manager records for a venue error."""
    meaning = ERROR_MEANINGS.get(code, "venue error")
    return f"okx {code} ({meaning}): {message}"


def sign(secret: str, prehash: str) -> str:
    """Return the base64 HMAC-SHA256 of ``prehash`` keyed by ``secret``."""
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def iso_timestamp(ms: int) -> str:
    """Return ``ms`` since the epoch as OKX writes it: ``2020-12-08T09:08:57.715Z``."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class OkxVenueError(Exception):
    """The venue refused a request: its HTTP status, code and message (``sCode``/``sMsg``)."""

    def __init__(self, status: int, code: str, message: str, wait_s: float = 0.0) -> None:
        super().__init__(rejection_reason(code, message))
        self.status = status
        self.code = code
        self.message = message
        self.wait_s = wait_s
        """For a rate-limit answer: how long the endpoint's budget is blocked."""

    @property
    def rate_limited(self) -> bool:
        """Return whether this was a rate-limit answer (``50011`` or HTTP 429)."""
        return self.code == RATE_LIMITED or self.status == 429


class SlidingWindow:
    """At most ``requests`` in any ``interval_s``, whatever the window's alignment.

    OKX does not say where its 2-second windows start, so the budget is kept
    over a sliding window: the oldest of the last ``requests`` sends must be
    at least ``interval_s`` old before another goes.
    """

    __slots__ = ("_blocked_until", "_clock", "_sent", "interval_s", "requests", "waits")

    def __init__(
        self, requests: int, interval_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if requests < 1 or interval_s <= 0:
            raise ValueError("a limit needs at least one request in a positive interval")
        self.requests = requests
        self.interval_s = interval_s
        self.waits = 0
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=requests)
        self._blocked_until = 0.0

    def delay(self) -> float:
        """Return seconds to wait before the next request may go (0: now)."""
        now = self._clock()
        wait = self._blocked_until - now
        if len(self._sent) == self.requests:
            wait = max(wait, self._sent[0] + self.interval_s - now)
        return max(wait, 0.0)

    async def acquire(self) -> None:
        """Wait until a request fits, then count it."""
        while (wait := self.delay()) > 0:
            self.waits += 1
            await asyncio.sleep(wait)
        self._sent.append(self._clock())

    def block_for(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after the venue said the limit was reached)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)


class RateLimits:
    """One :class:`SlidingWindow` per endpoint, and per instrument where OKX counts so."""

    def __init__(
        self,
        limits: Mapping[tuple[str, str], EndpointLimit] = ENDPOINT_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._windows: dict[tuple[str, str, str], SlidingWindow] = {}

    def window(self, method: str, path: str, inst_id: str = "") -> SlidingWindow:
        """Return the budget a request to ``method path`` (for ``inst_id``) spends from."""
        limit = self.limits.get((method, path), EndpointLimit(20, 2.0))
        key = (method, path, inst_id if limit.per_instrument else "")
        window = self._windows.get(key)
        if window is None:
            window = SlidingWindow(limit.requests, limit.interval_s, clock=self._clock)
            self._windows[key] = window
        return window


class OkxRest:
    """Signed and public REST calls to OKX, paced by the documented limits."""

    def __init__(
        self,
        *,
        rest_url: str | None = None,
        timeout_s: float = 10.0,
        max_retry_wait_s: float = 5.0,
        clock: VenueClock | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self.base_url = (rest_url or REST_URL).rstrip("/")
        self.max_retry_wait_s = max_retry_wait_s
        self.clock = clock if clock is not None else VenueClock()
        self.limits = limits if limits is not None else RateLimits()
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
        """Measure the venue's clock offset (``GET /api/v5/public/time``)."""
        sent = time.time_ns() // 1_000_000
        data = await self.call("GET", TIME_PATH)
        received = time.time_ns() // 1_000_000
        self.clock.observe(sent, int(data[0]["ts"]), received)
        log.info(
            "okx clock offset %+d ms (round trip %d ms)",
            self.clock.offset_ms,
            self.clock.round_trip_ms,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, str] | None = None,
        keys: ApiKey | None = None,
        inst_id: str = "",
    ) -> list[dict[str, Any]]:
        """Send one request and return its ``data``; raise on refusal or unknown outcome.

        Signed when ``keys`` are given. A ``50102`` answer re-measures the clock
        and sends the request once more.
        """
        try:
            return await self._send(
                method, path, query=query, body=body, keys=keys, inst_id=inst_id
            )
        except OkxVenueError as error:
            if error.code != TIMESTAMP_EXPIRED or keys is None:
                raise
        self.timestamp_retries += 1
        log.warning("okx %s %s: timestamp expired, measuring the clock again", method, path)
        await self.sync_clock()
        return await self._send(method, path, query=query, body=body, keys=keys, inst_id=inst_id)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        keys: ApiKey | None,
        inst_id: str,
    ) -> list[dict[str, Any]]:
        http = self._http
        if http is None:
            raise RuntimeError("OkxRest.open() was not awaited")
        window = self.limits.window(method, path, inst_id)
        await window.acquire()
        request_path = f"{path}?{urlencode(query)}" if query else path
        text = orjson.dumps(body).decode() if body is not None else ""
        headers = {"Content-Type": "application/json"}
        if keys is not None:
            if keys.passphrase is None:
                raise ValueError("OKX keys need a passphrase")
            stamp = iso_timestamp(self.clock.now_ms())
            headers["OK-ACCESS-KEY"] = keys.key.reveal()
            headers["OK-ACCESS-SIGN"] = sign(
                keys.secret.reveal(), f"{stamp}{method}{request_path}{text}"
            )
            headers["OK-ACCESS-TIMESTAMP"] = stamp
            headers["OK-ACCESS-PASSPHRASE"] = keys.passphrase.reveal()
        try:
            async with http.request(
                method, self.base_url + request_path, data=text or None, headers=headers
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutcomeUnknownError(f"{method} {path}: {type(exc).__name__}") from None
        if status >= 500:
            raise OutcomeUnknownError(f"{method} {path}: HTTP {status}")
        try:
            answer = orjson.loads(raw)
            code = str(answer.get("code", ""))
            message = str(answer.get("msg", ""))
            data = answer.get("data") or []
        except (orjson.JSONDecodeError, AttributeError):
            if status == 200:
                raise OutcomeUnknownError(f"{method} {path}: an answer that is not JSON") from None
            code, message, data = "", raw[:200].decode("utf-8", "replace"), []
        if status == 429 or code == RATE_LIMITED:
            # No Retry-After from OKX: the budget rests for one whole window.
            window.block_for(window.interval_s)
            self.rate_limited += 1
            log.warning(
                "okx %s %s: rate limit reached, no calls for %.1f s",
                method,
                path,
                window.interval_s,
            )
            raise OkxVenueError(status, code or RATE_LIMITED, message, wait_s=window.interval_s)
        if code == "0":
            return list(data)
        if code in ("1", "2") and data and isinstance(data[0], dict) and "sCode" in data[0]:
            # One order's own verdict: the reason is in sCode and sMsg.
            code, message = str(data[0]["sCode"]), str(data[0].get("sMsg", ""))
        if code in OUTCOME_UNKNOWN_CODES:
            raise OutcomeUnknownError(f"{method} {path}: {rejection_reason(code, message)}")
        raise OkxVenueError(status, code or str(status), message)
