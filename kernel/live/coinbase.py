"""Live Coinbase Advanced Trade market data into a CoinbaseFeed.

Rules (Advanced Trade websocket overview, channels and rate-limit pages; see
``docs/venues.md``):

* the market data endpoint is ``wss://advanced-trade-ws.coinbase.com``; a
  client that sends no ``subscribe`` within 5 seconds is disconnected, so the
  subscriptions go out as soon as the connection opens;
* one channel per message: ``{"type": "subscribe", "product_ids": [...],
  "channel": "level2"}``, then ``market_trades``, ``ticker`` and
  ``heartbeats``. ``heartbeats`` (one a second) keeps quiet subscriptions open,
  so it is Coinbase's keepalive; there is no client ping, and a few seconds of
  silence reconnect;
* ``level2``, ``market_trades``, ``ticker`` and ``heartbeats`` need no
  authentication. Coinbase recommends authenticating "for the most reliable
  connection": pass ``jwt``, a callable returning a fresh JWT for each message
  (they expire after 2 minutes); it is added to every subscribe and
  unsubscribe and never logged;
* unauthenticated messages are limited to 8 a second per IP address: the
  subscriptions of a connection are a handful, and resubscriptions are spaced
  by ``send_gap_s`` (an unsubscribe and a subscribe each);
* a level2 subscription answers with a snapshot; after a reconnect everything
  is subscribed again, and a book the feed invalidates (a ``sequence_num``
  gap invalidates every book of the connection) is unsubscribed and subscribed
  alone, paced by a :class:`~kernel.live.resubscribe.Resubscriber`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from kernel.adapters.coinbase.feed import CoinbaseFeed
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker
from kernel.live.resubscribe import Resubscriber
from kernel.live.session import WebSocketSession
from tradekernel_sdk.types import BookState

__all__ = ["MARKET_DATA_URL", "CoinbaseMarketData"]

MARKET_DATA_URL = "wss://advanced-trade-ws.coinbase.com"


class CoinbaseMarketData:
    """Keep ``product_ids``' books on ``feed`` live from one market data connection."""

    def __init__(
        self,
        feed: CoinbaseFeed,
        product_ids: Sequence[str],
        *,
        url: str = MARKET_DATA_URL,
        trades: bool = True,
        top_of_book: bool = True,
        jwt: Callable[[], str] | None = None,
        idle_timeout_s: float = 10.0,
        min_resync_interval_s: float = 1.0,
        max_resync_interval_s: float = 30.0,
        send_gap_s: float = 0.25,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not product_ids:
            raise ValueError("at least one product is needed")
        self.feed = feed
        self.product_ids = list(product_ids)
        self.trades = trades
        self.top_of_book = top_of_book
        self._jwt = jwt
        self.session = WebSocketSession(
            url,
            feed.on_frame,
            subscribe=self._subscribe_all,
            on_close=self._on_close,
            # Heartbeats arrive every second; the session never needs to ping.
            ping_after_s=idle_timeout_s,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            breaker=breaker,
        )
        self.resubscriber = Resubscriber(
            self.session,
            feed.resync_requests,
            messages=self._resubscribe_messages,
            is_valid=lambda subject: feed.book_state(subject[7:]) is BookState.VALID,
            min_interval_s=min_resync_interval_s,
            max_interval_s=max_resync_interval_s,
            send_gap_s=send_gap_s,
        )

    @property
    def subjects(self) -> list[str]:
        """Return the resync subjects of the subscribed books (``level2:<product>``)."""
        return [f"level2:{product}" for product in self.product_ids]

    def _message(self, action: str, channel: str, product_ids: list[str] | None) -> bytes:
        message: dict[str, Any] = {"type": action, "channel": channel}
        if product_ids is not None:
            message["product_ids"] = product_ids
        if self._jwt is not None:
            message["jwt"] = self._jwt()
        return orjson.dumps(message)

    def _subscribe_all(self) -> list[bytes]:
        self.resubscriber.subscribed_all(self.subjects)
        # heartbeats first: it keeps the connection open while the books load.
        messages = [self._message("subscribe", "heartbeats", None)]
        channels = ["level2"]
        if self.trades:
            channels.append("market_trades")
        if self.top_of_book:
            channels.append("ticker")
        messages += [self._message("subscribe", ch, self.product_ids) for ch in channels]
        return messages

    def _resubscribe_messages(self, subject: str) -> list[bytes]:
        product = [subject.removeprefix("level2:")]
        return [
            self._message("unsubscribe", "level2", product),
            self._message("subscribe", "level2", product),
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
