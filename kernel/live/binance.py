"""Live Binance market data: the combined stream plus REST snapshots into a BinanceFeed.

Binance's documented way to keep a local book (spot "How to manage a local
order book correctly", and the futures equivalent): open the diff stream and
buffer it, fetch a REST depth snapshot, drop diffs the snapshot already
covers, and apply from the diff that bridges it. The feed does the buffering
and bridging; this module owns the connection and decides when a snapshot is
due: after every (re)connect, and whenever a book is not valid some time
after its last snapshot (a gap, or a snapshot older than the stream).

Snapshots are paced by request weight (spot: 6000 per minute; USD-M and
COIN-M: 2400), with each ``depth`` call weighed by its ``limit`` as the
documentation's tables say, the venue's ``X-MBX-USED-WEIGHT-1M`` echo taken
as the truth, and ``Retry-After`` on 429 and 418 honoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from kernel.adapters.base import RawFrame
from kernel.adapters.binance.feed import BinanceFeed, Market
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker
from kernel.live.session import WebSocketSession
from kernel.live.weights import WeightLimiter
from tradekernel_sdk.types import BookState

__all__ = ["ENDPOINTS", "BinanceEndpoints", "BinanceMarketData", "depth_weight"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinanceEndpoints:
    """Where one Binance market lives and how much REST weight it allows."""

    ws_url: str
    rest_url: str
    depth_path: str
    weight_per_minute: int
    # (largest limit, weight) rows of the depth endpoint's weight table.
    depth_weights: tuple[tuple[int, int], ...]


ENDPOINTS: dict[Market, BinanceEndpoints] = {
    "spot": BinanceEndpoints(
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
        "/api/v3/depth",
        6000,
        ((100, 5), (500, 25), (1000, 50), (5000, 250)),
    ),
    "usdm": BinanceEndpoints(
        "wss://fstream.binance.com",
        "https://fapi.binance.com",
        "/fapi/v1/depth",
        2400,
        ((50, 2), (100, 5), (500, 10), (1000, 20)),
    ),
    "coinm": BinanceEndpoints(
        "wss://dstream.binance.com",
        "https://dapi.binance.com",
        "/dapi/v1/depth",
        2400,
        ((50, 2), (100, 5), (500, 10), (1000, 20)),
    ),
}


def depth_weight(endpoints: BinanceEndpoints, limit: int) -> int:
    """Return the request weight of a depth snapshot of ``limit`` levels."""
    for largest, weight in endpoints.depth_weights:
        if limit <= largest:
            return weight
    raise ValueError(f"depth limit {limit} is above the venue's maximum")


class BinanceMarketData:
    """Keep ``symbols``' books on ``feed`` live from one combined-stream connection."""

    def __init__(
        self,
        feed: BinanceFeed,
        symbols: Sequence[str],
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        depth_limit: int = 1000,
        trades: bool = True,
        resync_after_s: float = 2.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        idle_timeout_s: float = 30.0,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        self.feed = feed
        self.symbols = [symbol.upper() for symbol in symbols]
        self.endpoints = ENDPOINTS[feed.market]
        self.rest_url = (rest_url or self.endpoints.rest_url).rstrip("/")
        self.depth_limit = depth_limit
        self.depth_weight = depth_weight(self.endpoints, depth_limit)
        self.limiter = WeightLimiter(self.endpoints.weight_per_minute, 60.0)
        self.snapshots_fetched = 0
        self.snapshot_failures = 0
        self._resync_after_ns = int(resync_after_s * 1e9)
        self._last_fetch_ns: dict[str, int] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        streams = []
        for symbol in self.symbols:
            name = symbol.lower()
            streams += [f"{name}@depth@100ms", f"{name}@bookTicker"]
            if trades:
                streams.append(f"{name}@{'trade' if feed.market == 'spot' else 'aggTrade'}")
        base = (ws_url or self.endpoints.ws_url).rstrip("/")
        # Streams in the URL: a reconnect subscribes again just by connecting.
        self.session = WebSocketSession(
            f"{base}/stream?streams={'/'.join(streams)}",
            feed.on_frame,
            on_open=self._on_open,
            on_close=self._on_close,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            breaker=breaker,
        )

    async def run(self) -> None:
        """Run until :meth:`stop`: the stream, and snapshots whenever a book needs one."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            self._http = http
            watcher = asyncio.create_task(self._watch_books())
            try:
                await self.session.run()
            finally:
                watcher.cancel()
                for task in [watcher, *self._in_flight.values()]:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self._http = None

    def stop(self) -> None:
        """Close the connection and end :meth:`run`."""
        self.session.stop()

    async def _on_open(self) -> None:
        for symbol in self.symbols:
            self._request_snapshot(symbol)

    def _on_close(self, reason: str) -> None:
        self.feed.connection_lost(reason, time.time_ns())
        self._last_fetch_ns.clear()

    async def _watch_books(self) -> None:
        """Ask again for the snapshot of any book that stays invalid."""
        while True:
            await asyncio.sleep(0.25)
            if not self.session.connected.is_set():
                continue
            now = time.monotonic_ns()
            for symbol in self.symbols:
                if self.feed.book_state(symbol) is BookState.VALID:
                    continue
                if now - self._last_fetch_ns.get(symbol, 0) >= self._resync_after_ns:
                    self._request_snapshot(symbol)

    def _request_snapshot(self, symbol: str) -> None:
        if symbol in self._in_flight:
            return
        self._last_fetch_ns[symbol] = time.monotonic_ns()
        task = asyncio.get_running_loop().create_task(self._fetch_snapshot(symbol))
        self._in_flight[symbol] = task
        task.add_done_callback(lambda _: self._in_flight.pop(symbol, None))

    async def _fetch_snapshot(self, symbol: str) -> None:
        http = self._http
        if http is None:
            return
        await self.limiter.acquire(self.depth_weight)
        url = f"{self.rest_url}{self.endpoints.depth_path}"
        params = {"symbol": symbol, "limit": str(self.depth_limit)}
        try:
            async with http.get(url, params=params) as response:
                used = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
                if used.isdigit():
                    self.limiter.observe_used(int(used))
                body = await response.read()
                if response.status in (418, 429):
                    retry_after = response.headers.get("Retry-After", "")
                    wait = float(retry_after) if retry_after.isdigit() else 60.0
                    self.limiter.block_for(wait)
                    self.snapshot_failures += 1
                    log.warning(
                        "binance %s snapshot: HTTP %d, no REST calls for %.0fs",
                        symbol,
                        response.status,
                        wait,
                    )
                    return
                if response.status != 200:
                    self.snapshot_failures += 1
                    log.warning(
                        "binance %s snapshot: HTTP %d: %r", symbol, response.status, body[:200]
                    )
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.snapshot_failures += 1
            log.warning("binance %s snapshot failed: %s", symbol, exc)
            return
        self.snapshots_fetched += 1
        self.feed.on_frame(RawFrame(time.time_ns(), body, f"rest:depth:{symbol}"))
