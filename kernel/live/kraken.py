"""Live Kraken spot market data: the public websocket (v2 by default, v1 too) into a KrakenFeed.

Subscriptions (Kraken spot websocket references, see ``docs/venues.md``):

* v2 (``wss://ws.kraken.com/v2``): ``{"method": "subscribe", "params": {"channel":
  "book", "symbol": [...], "depth": N, "snapshot": true}}``, then ``trade`` and
  ``ticker`` (top of book) for the same symbols; keepalive ``{"method": "ping"}``.
* v1 (``wss://ws.kraken.com``): ``{"event": "subscribe", "pair": [...],
  "subscription": {"name": "book", "depth": N}}``, then ``trade`` and
  ``spread`` (top of book); keepalive ``{"event": "ping"}``.

The book depth is one of 10, 25, 100, 500 and 1000. A snapshot follows every
book subscription, so after a reconnect everything is subscribed again, and a
book that fails its checksum is unsubscribed and subscribed alone, paced by a
:class:`~kernel.live.resubscribe.Resubscriber`. Kraken sends a heartbeat about
every second on a connection with a subscription, so a few seconds of silence
already means trouble: the session pings, then reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from kernel.adapters.kraken.feed import KrakenFeed
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker
from kernel.live.resubscribe import Resubscriber
from kernel.live.session import WebSocketSession
from tradekernel_sdk.types import BookState

__all__ = ["BOOK_DEPTHS", "V1_URL", "V2_URL", "KrakenMarketData"]

V1_URL = "wss://ws.kraken.com"
V2_URL = "wss://ws.kraken.com/v2"
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
"""The book depths Kraken accepts (v1 and v2 book channel references)."""


class KrakenMarketData:
    """Keep ``pairs``' books on ``feed`` live from one public Kraken connection.

    ``pairs`` are written as the version names them (``BTC/USD`` in v2,
    ``XBT/USD`` in v1).
    """

    def __init__(
        self,
        feed: KrakenFeed,
        pairs: Sequence[str],
        *,
        version: Literal[1, 2] = 2,
        url: str | None = None,
        depth: int = 10,
        trades: bool = True,
        top_of_book: bool = True,
        ping_after_s: float = 5.0,
        idle_timeout_s: float = 10.0,
        min_resync_interval_s: float = 1.0,
        max_resync_interval_s: float = 30.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("at least one pair is needed")
        if version not in (1, 2):
            raise ValueError(f"Kraken websocket version must be 1 or 2, got {version!r}")
        if depth not in BOOK_DEPTHS:
            raise ValueError(f"Kraken book depth must be one of {BOOK_DEPTHS}, got {depth}")
        self.feed = feed
        self.pairs = list(pairs)
        self.version = version
        self.depth = depth
        self.trades = trades
        self.top_of_book = top_of_book
        ping = {"event": "ping"} if version == 1 else {"method": "ping"}
        self.session = WebSocketSession(
            url or (V1_URL if version == 1 else V2_URL),
            feed.on_frame,
            subscribe=self._subscribe_all,
            on_close=self._on_close,
            # v1 answers {"event":"pong"} exactly; v2's pong carries times and reaches the feed.
            app_ping=(orjson.dumps(ping).decode(), '{"event":"pong"}'),
            ping_after_s=ping_after_s,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            breaker=breaker,
        )
        self.resubscriber = Resubscriber(
            self.session,
            feed.resync_requests,
            messages=self._resubscribe_messages,
            is_valid=lambda subject: feed.book_state(subject[5:]) is BookState.VALID,
            min_interval_s=min_resync_interval_s,
            max_interval_s=max_resync_interval_s,
        )

    @property
    def subjects(self) -> list[str]:
        """Return the resync subjects of the subscribed books (``book:<pair>``)."""
        return [f"book:{pair}" for pair in self.pairs]

    # -- messages ------------------------------------------------------------

    def _request(self, action: str, channel: str, pairs: list[str]) -> bytes:
        if self.version == 2:
            params: dict[str, Any] = {"channel": channel, "symbol": pairs}
            if channel == "book":
                params["depth"] = self.depth
                if action == "subscribe":
                    params["snapshot"] = True
            return orjson.dumps({"method": action, "params": params})
        subscription: dict[str, Any] = {"name": channel}
        if channel == "book":
            subscription["depth"] = self.depth
        return orjson.dumps({"event": action, "pair": pairs, "subscription": subscription})

    def _subscribe_all(self) -> list[bytes]:
        self.resubscriber.subscribed_all(self.subjects)
        channels = ["book"]
        if self.trades:
            channels.append("trade")
        if self.top_of_book:
            channels.append("ticker" if self.version == 2 else "spread")
        return [self._request("subscribe", channel, self.pairs) for channel in channels]

    def _resubscribe_messages(self, subject: str) -> list[bytes]:
        pair = subject.removeprefix("book:")
        return [
            self._request("unsubscribe", "book", [pair]),
            self._request("subscribe", "book", [pair]),
        ]

    # -- lifecycle -----------------------------------------------------------

    def _on_close(self, reason: str) -> None:
        self.feed.connection_lost(reason, time.time_ns(), self.session.url)

    async def run(self) -> None:
        """Run until :meth:`stop`: reconnect, resubscribe, resync failed books."""
        resubscriber = asyncio.create_task(self.resubscriber.run())
        try:
            await self.session.run()
        finally:
            resubscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resubscriber

    def stop(self) -> None:
        """Close the connection and end :meth:`run`."""
        self.session.stop()
