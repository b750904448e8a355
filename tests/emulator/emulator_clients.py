"""Real clients of the emulator for the tests: websocket readers, signed REST requests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import websockets

from kernel.adapters.base import Feed, RawFrame
from kernel.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PASSPHRASE, Emulator

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data"
BINANCE_BTC = BUNDLED / "binance_spot" / "btcusdt_20240808_head12000.gz"
BINANCE_ETH = BUNDLED / "binance_spot" / "ethusdt_20240808_head12000.gz"
OKX_REST = BUNDLED / "okx_v5" / "OKX.0.gz"
OKX_WS = BUNDLED / "okx_v5" / "OKX.ws.1.0.gz"
BTC_STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


def connect(url: str) -> websockets.connect:
    """Open a websocket that buffers whatever arrives.

    websockets stops reading the socket when 16 messages wait unread; a test
    that reads part of a fast replay and then closes would wait ten seconds for
    a close frame stuck behind the data it did not read.
    """
    return websockets.connect(url, max_queue=None)


def run(coroutine: Coroutine[Any, Any, None], timeout: float = 60.0) -> None:
    """Run a test coroutine on a fresh loop, failing it after ``timeout`` seconds."""
    asyncio.run(asyncio.wait_for(coroutine, timeout))


async def read_into(
    ws: websockets.ClientConnection,
    feed: Feed,
    source: str,
    *,
    limit: int | None = None,
    idle_s: float = 1.0,
) -> int:
    """Give received frames to ``feed`` until ``limit`` frames, ``idle_s`` of silence or close."""
    received = 0
    while limit is None or received < limit:
        try:
            message = await asyncio.wait_for(ws.recv(), idle_s)
        except (TimeoutError, websockets.ConnectionClosed):
            break
        payload = message.encode() if isinstance(message, str) else message
        feed.on_frame(RawFrame(time.time_ns(), payload, source))
        received += 1
    return received


async def get_json(
    http: aiohttp.ClientSession, url: str, **params: str
) -> tuple[int, Any, dict[str, str]]:
    """GET ``url``; return the status, the parsed body and the headers."""
    async with http.get(url, params=params) as response:
        return response.status, orjson.loads(await response.read()), dict(response.headers)


async def binance_depth(
    http: aiohttp.ClientSession, emulator: Emulator, symbol: str = "BTCUSDT", limit: int = 1000
) -> bytes:
    """Return the raw body of a REST depth snapshot."""
    url = f"{emulator.http_url}/api/v3/depth"
    async with http.get(url, params={"symbol": symbol, "limit": str(limit)}) as response:
        assert response.status == 200, await response.text()
        return await response.read()


def binance_signed_query(
    params: dict[str, str], *, secret: str = DEFAULT_API_SECRET, timestamp_ms: int | None = None
) -> str:
    """Return the query string of a SIGNED request, signature last (Binance's rule)."""
    stamped = {**params, "timestamp": str(timestamp_ms or time.time_ns() // 1_000_000)}
    query = urlencode(stamped)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def binance_signed(
    http: aiohttp.ClientSession,
    emulator: Emulator,
    method: str,
    path: str,
    params: dict[str, str],
    *,
    secret: str = DEFAULT_API_SECRET,
    api_key: str = DEFAULT_API_KEY,
    timestamp_ms: int | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """Send a SIGNED request with the parameters in the query string."""
    query = binance_signed_query(params, secret=secret, timestamp_ms=timestamp_ms)
    url = f"{emulator.http_url}{path}?{query}"
    headers = {"X-MBX-APIKEY": api_key}
    async with http.request(method, url, headers=headers) as response:
        return response.status, orjson.loads(await response.read()), dict(response.headers)


def okx_timestamp(offset_ms: int = 0) -> str:
    """Return an OK-ACCESS-TIMESTAMP: ISO 8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp((time.time_ns() // 1_000_000 + offset_ms) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def okx_signed(
    http: aiohttp.ClientSession,
    emulator: Emulator,
    method: str,
    path: str,
    body: dict[str, str] | None = None,
    *,
    secret: str = DEFAULT_API_SECRET,
    timestamp: str | None = None,
) -> tuple[int, Any]:
    """Send a signed OKX request (``path`` with its query string for GET)."""
    text = orjson.dumps(body).decode() if body is not None else ""
    stamp = timestamp or okx_timestamp()
    prehash = f"{stamp}{method}{path}{text}".encode()
    signature = base64.b64encode(hmac.new(secret.encode(), prehash, hashlib.sha256).digest())
    headers = {
        "OK-ACCESS-KEY": DEFAULT_API_KEY,
        "OK-ACCESS-SIGN": signature.decode(),
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": DEFAULT_PASSPHRASE,
        "Content-Type": "application/json",
    }
    url = f"{emulator.http_url}{path}"
    async with http.request(method, url, data=text or None, headers=headers) as response:
        return response.status, orjson.loads(await response.read())
