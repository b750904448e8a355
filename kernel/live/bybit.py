"""Live Bybit v5 public market data (spot, linear, inverse) into a BybitFeed.

One :class:`BybitMarketData` keeps one connection to one market's public
endpoint (``wss://stream.bybit.com/v5/public/{spot,linear,inverse}``); spot
and linear books of the same symbol need one each, and the feed keeps them
apart by connection (see ``docs/venues.md`` for the sources of these rules):

* subscribe with ``{"op": "subscribe", "args": [topics]}``: ``orderbook.{depth}.{symbol}``,
  ``publicTrade.{symbol}`` and ``orderbook.1.{symbol}`` (Bybit's top of book);
  spot takes at most 10 topics per request, so requests are split by 10;
* Bybit recommends ``{"op": "ping"}`` every 20 seconds; the session sends it
  after 20 seconds of silence (a connection that carries data is alive);
* a snapshot follows every orderbook subscription, so a reconnect subscribes
  everything again, and a topic whose ``u`` chain breaks is unsubscribed and
  subscribed alone, paced by a :class:`~kernel.live.resubscribe.Resubscriber`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Literal

import orjson

from kernel.adapters.bybit.feed import BybitFeed
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker
from kernel.live.resubscribe import Resubscriber
from kernel.live.session import WebSocketSession
from tradekernel_sdk.types import BookState

__all__ = ["MAX_TOPICS_PER_REQUEST", "PUBLIC_URLS", "BybitMarketData"]

BybitMarket = Literal["spot", "linear", "inverse"]

PUBLIC_URLS: dict[BybitMarket, str] = {
    "spot": "wss://stream.bybit.com/v5/public/spot",
    "linear": "wss://stream.bybit.com/v5/public/linear",
    "inverse": "wss://stream.bybit.com/v5/public/inverse",
}
MAX_TOPICS_PER_REQUEST = 10
"""Spot's limit of topics in one subscribe request; used for every market."""


class BybitMarketData:
    """Keep ``symbols``' books of one Bybit market on ``feed`` live from one connection."""

    def __init__(
        self,
        feed: BybitFeed,
        symbols: Sequence[str],
        *,
        market: BybitMarket = "spot",
        url: str | None = None,
        depth: int = 50,
        trades: bool = True,
        top_of_book: bool = True,
        ping_after_s: float = 20.0,
        idle_timeout_s: float = 40.0,
        min_resync_interval_s: float = 1.0,
        max_resync_interval_s: float = 30.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if market not in PUBLIC_URLS:
            raise ValueError(f"Bybit market must be one of {sorted(PUBLIC_URLS)}, got {market!r}")
        if depth < 1:
            raise ValueError(f"book depth must be at least 1, got {depth}")
        self.feed = feed
        self.symbols = list(symbols)
        self.market = market
        self.depth = depth
        self.trades = trades
        self.top_of_book = top_of_book and depth != 1
        self.session = WebSocketSession(
            url or PUBLIC_URLS[market],
            feed.on_frame,
            subscribe=self._subscribe_all,
            on_close=self._on_close,
            # Pong answers carry a connection id, so none is dropped here; the feed reads them.
            app_ping=('{"op":"ping"}', ""),
            ping_after_s=ping_after_s,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            breaker=breaker,
        )
        self.resubscriber = Resubscriber(
            self.session,
            feed.resync_requests,
            messages=self._resubscribe_messages,
            is_valid=self._topic_valid,
            min_interval_s=min_resync_interval_s,
            max_interval_s=max_resync_interval_s,
        )

    @property
    def book_topics(self) -> list[str]:
        """Return the orderbook topics (the resync subjects), deepest first per symbol."""
        topics = []
        for symbol in self.symbols:
            topics.append(f"orderbook.{self.depth}.{symbol}")
            if self.top_of_book:
                topics.append(f"orderbook.1.{symbol}")
        return topics

    def _topic_valid(self, topic: str) -> bool:
        return self.feed.book_state_of(self.session.url, topic) is BookState.VALID

    def _subscribe_all(self) -> list[bytes]:
        self.resubscriber.subscribed_all(self.book_topics)
        topics = self.book_topics
        if self.trades:
            topics += [f"publicTrade.{symbol}" for symbol in self.symbols]
        return [
            orjson.dumps(
                {"op": "subscribe", "args": topics[start : start + MAX_TOPICS_PER_REQUEST]}
            )
            for start in range(0, len(topics), MAX_TOPICS_PER_REQUEST)
        ]

    @staticmethod
    def _resubscribe_messages(topic: str) -> list[bytes]:
        return [
            orjson.dumps({"op": "unsubscribe", "args": [topic]}),
            orjson.dumps({"op": "subscribe", "args": [topic]}),
        ]

    def _on_close(self, reason: str) -> None:
        self.feed.connection_lost(reason, time.time_ns(), self.session.url)

    async def run(self) -> None:
        """Run until :meth:`stop`: reconnect, resubscribe, resync broken books."""
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
