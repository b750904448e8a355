"""Live OKX market data: the v5 public websocket into an OkxFeed.

OKX sends a full ``books`` snapshot on every subscribe, then updates carrying
a CRC32 checksum and ``seqId``/``prevSeqId``; the feed verifies both. The
documented remedy for a failed check is to resubscribe, which is what this
module does for any book that stays invalid, and after every reconnect (the
subscription is sent again, so a fresh snapshot follows).

OKX closes a connection that receives nothing for 30 seconds; the session
sends the text ``ping`` after 25 seconds of silence and drops ``pong`` answers
before they reach the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import orjson

from kernel.adapters.okx.feed import OkxFeed
from kernel.live.backoff import Backoff
from kernel.live.circuit import CircuitBreaker
from kernel.live.session import WebSocketSession
from tradekernel_sdk.types import BookState

__all__ = ["PUBLIC_URL", "OkxMarketData"]

PUBLIC_URL = "wss://ws.okx.com:8443/ws/v5/public"


def _text(request: object) -> str:
    """Encode a request as JSON text: OKX reads requests from text frames only."""
    return orjson.dumps(request).decode()


class OkxMarketData:
    """Keep ``inst_ids``' books on ``feed`` live from one public connection."""

    def __init__(
        self,
        feed: OkxFeed,
        inst_ids: Sequence[str],
        *,
        url: str = PUBLIC_URL,
        book_channel: str = "books",
        trades: bool = True,
        resync_after_s: float = 2.0,
        ping_after_s: float = 25.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not inst_ids:
            raise ValueError("at least one instrument is needed")
        self.feed = feed
        self.inst_ids = list(inst_ids)
        self.book_channel = book_channel
        self.trades = trades
        self.resubscribes = 0
        self._resync_after_ns = int(resync_after_s * 1e9)
        self._subscribed_ns: dict[str, int] = {}
        self.session = WebSocketSession(
            url,
            feed.on_frame,
            subscribe=self._subscribe_all,
            on_close=self._on_close,
            app_ping=("ping", "pong"),
            ping_after_s=ping_after_s,
            idle_timeout_s=ping_after_s + 10.0,
            backoff=backoff,
            breaker=breaker,
        )

    def _args(self, inst_id: str, *, books_only: bool = False) -> list[dict[str, str]]:
        args = [{"channel": self.book_channel, "instId": inst_id}]
        if self.trades and not books_only:
            args.append({"channel": "trades", "instId": inst_id})
        return args

    def _subscribe_all(self) -> list[str]:
        now = time.monotonic_ns()
        args = []
        for inst_id in self.inst_ids:
            args += self._args(inst_id)
            self._subscribed_ns[inst_id] = now
        return [_text({"op": "subscribe", "args": args})]

    def _on_close(self, reason: str) -> None:
        self.feed.connection_lost(reason, time.time_ns())

    async def run(self) -> None:
        """Run until :meth:`stop`, resubscribing any book that stays invalid."""
        watcher = asyncio.create_task(self._watch_books())
        try:
            await self.session.run()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def stop(self) -> None:
        """Close the connection and end :meth:`run`."""
        self.session.stop()

    async def _watch_books(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if not self.session.connected.is_set():
                continue
            now = time.monotonic_ns()
            for inst_id in self.inst_ids:
                if self.feed.book_state(inst_id) is BookState.VALID:
                    continue
                if now - self._subscribed_ns.get(inst_id, 0) < self._resync_after_ns:
                    continue
                await self._resubscribe(inst_id, now)

    async def _resubscribe(self, inst_id: str, now: int) -> None:
        """Unsubscribe and subscribe the book again: OKX answers with a new snapshot."""
        args = self._args(inst_id, books_only=True)
        self._subscribed_ns[inst_id] = now
        if await self.session.send(_text({"op": "unsubscribe", "args": args})):
            await self.session.send(_text({"op": "subscribe", "args": args}))
            self.resubscribes += 1
