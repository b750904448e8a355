"""Kraken live transport against a loopback server that speaks Kraken's websocket v2 (and v1).

The server answers subscriptions as Kraken's v2 book reference shows
(an acknowledgement per symbol carrying the depth, then a snapshot with its
CRC32 checksum) and keeps its own book to checksum every update, following
the v2 checksum guide; the test decides when updates go out and which are
corrupted.
"""

from __future__ import annotations

import asyncio
import zlib
from decimal import Decimal
from typing import Any

import orjson
import pytest
from live_venue import (
    StatusLog,
    fast_backoff,
    loopback,
    no_tasks_left,
    run,
    running,
    wait_until,
)
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from kernel.adapters.kraken.feed import KrakenFeed
from kernel.bus.bus import Bus
from kernel.live.kraken import KrakenMarketData
from tradekernel_sdk.types import BookState

BOOKS = {
    # Kraken's v2 checksum guide example levels (best first), trimmed to five a side.
    "BTC/USD": (
        [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"),
         ("45281.0", "0.10000000"), ("45280.3", "1.54592586")],
        [("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"),
         ("45289.6", "1.54560911"), ("45290.2", "0.15890660")],
    ),
    "ETH/USD": (
        [("2500.10", "3.00000000"), ("2500.00", "1.25000000"), ("2499.50", "0.50000000")],
        [("2500.20", "2.00000000"), ("2500.40", "0.75000000"), ("2501.00", "9.10000000")],
    ),
}  # fmt: skip


def kraken_checksum(
    bids: dict[Decimal, tuple[str, str]], asks: dict[Decimal, tuple[str, str]]
) -> int:
    """The guide's rule: best 10 asks then best 10 bids, '.' and leading zeros removed, CRC32."""
    text = ""
    best_asks = [asks[p] for p in sorted(asks)[:10]]
    best_bids = [bids[p] for p in sorted(bids, reverse=True)[:10]]
    for price, qty in best_asks + best_bids:
        text += price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
    return zlib.crc32(text.encode())


class KrakenV2Venue:
    """Kraken's public v2 endpoint, as far as books, trades, tickers and pings go."""

    def __init__(self, depth: int = 10) -> None:
        self.depth = depth
        self.received: list[dict[str, Any]] = []
        self.open: list[ServerConnection] = []
        self.connections = 0
        # Per open connection: (channel, symbol) -> how many live subscriptions.
        self.live: dict[ServerConnection, dict[tuple[str, str], int]] = {}
        self.snapshots_sent = 0
        self.books: dict[
            str, tuple[dict[Decimal, tuple[str, str]], dict[Decimal, tuple[str, str]]]
        ] = {}

    def book_subscribes(self, symbol: str) -> int:
        return sum(
            1
            for m in self.received
            if m.get("method") == "subscribe"
            and m["params"]["channel"] == "book"
            and symbol in m["params"]["symbol"]
        )

    def pings(self) -> int:
        return sum(1 for m in self.received if m.get("method") == "ping")

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.open.append(ws)
        self.live[ws] = {}
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                self.received.append(message)
                await self._answer(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.open.remove(ws)
            del self.live[ws]

    async def _answer(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method == "ping":
            await ws.send('{"method":"pong","time_in":"2023-10-06T17:35:55.000000Z"}')
            return
        params = message["params"]
        channel = params["channel"]
        live = self.live[ws]
        for symbol in params["symbol"]:
            key = (channel, symbol)
            if method == "subscribe":
                live[key] = live.get(key, 0) + 1
                result: dict[str, Any] = {"channel": channel, "symbol": symbol}
                if channel == "book":
                    result |= {"depth": params["depth"], "snapshot": True}
                await ws.send(
                    orjson.dumps({"method": "subscribe", "result": result, "success": True})
                )
                if channel == "book":
                    await ws.send(self._snapshot(symbol))
            elif method == "unsubscribe":
                live.pop(key, None)
                await ws.send(
                    orjson.dumps(
                        {
                            "method": "unsubscribe",
                            "result": {"channel": channel, "symbol": symbol},
                            "success": True,
                        }
                    )
                )

    def _snapshot(self, symbol: str) -> bytes:
        bids, asks = BOOKS[symbol]
        book = ({Decimal(p): (p, q) for p, q in bids}, {Decimal(p): (p, q) for p, q in asks})
        self.books[symbol] = book
        self.snapshots_sent += 1
        return self._message("snapshot", symbol, bids, asks, kraken_checksum(*book))

    @staticmethod
    def _message(
        kind: str,
        symbol: str,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        checksum: int,
    ) -> bytes:
        def levels(side: list[tuple[str, str]]) -> str:
            # Number literals at full precision, as Kraken writes them.
            return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side)

        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
            f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum},'
            f'"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
        ).encode()

    async def update(self, symbol: str, bid: tuple[str, str], *, corrupt: bool = False) -> None:
        """Set one bid level on every connection subscribed to ``symbol``'s book."""
        bids, asks = self.books[symbol]
        price, qty = bid
        if Decimal(qty):
            bids[Decimal(price)] = (price, qty)
        else:
            bids.pop(Decimal(price), None)
        checksum = kraken_checksum(bids, asks) ^ (1 if corrupt else 0)
        frame = self._message("update", symbol, [bid], [], checksum)
        for ws in list(self.open):
            if self.live.get(ws, {}).get(("book", symbol)):
                await ws.send(frame)

    async def drop_all(self) -> None:
        for ws in list(self.open):
            await ws.close(code=1011, reason="venue restart")


def make(
    url: str, pairs: list[str], **options: Any
) -> tuple[KrakenFeed, KrakenMarketData, StatusLog]:
    bus = Bus()
    feed = KrakenFeed(bus)
    statuses = StatusLog(bus, "kraken")
    live = KrakenMarketData(
        feed,
        pairs,
        url=url,
        backoff=fast_backoff(),
        min_resync_interval_s=0.05,
        max_resync_interval_s=0.4,
        **options,
    )
    return feed, live, statuses


def valid(feed: KrakenFeed, *pairs: str) -> bool:
    return all(feed.book_state(pair) is BookState.VALID for pair in pairs)


def test_subscribes_to_book_trades_and_ticker_and_the_books_become_valid() -> None:
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, _ = make(url, ["BTC/USD", "ETH/USD"], depth=25)
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC/USD", "ETH/USD"))
                await venue.update("BTC/USD", ("45283.6", "0.50000000"))
                await wait_until(lambda: feed.stats.checksum_checks >= 3)
                assert valid(feed, "BTC/USD")
                book = feed.book("BTC/USD")
                assert book is not None and book.best_bid() is not None
            assert [m["params"] for m in venue.received if m.get("method") == "subscribe"] == [
                {
                    "channel": "book",
                    "symbol": ["BTC/USD", "ETH/USD"],
                    "depth": 25,
                    "snapshot": True,
                },
                {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"]},
                {"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"]},
            ]
            assert feed.book_depth("BTC/USD") == 25  # from the acknowledgement
            assert feed.stats.checksum_failures == 0

    run(main())


def test_silence_sends_kraken_ping_and_an_answered_ping_keeps_the_connection() -> None:
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, _ = make(url, ["BTC/USD"], ping_after_s=0.1, idle_timeout_s=1.0)
            async with running(live):
                await wait_until(lambda: venue.pings() >= 2)
                assert live.session.stats.app_pings >= 2
                assert live.session.stats.connects == 1
                assert valid(feed, "BTC/USD")
            assert {"method": "ping"} in venue.received

    run(main())


def test_a_dropped_connection_invalidates_at_once_then_reconnects_resubscribes_and_resyncs() -> (
    None
):
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, statuses = make(url, ["BTC/USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC/USD"))
                await venue.drop_all()
                await wait_until(
                    lambda: any("connection lost" in r for r in statuses.invalid("BTC/USD"))
                )
                await wait_until(lambda: venue.connections == 2 and valid(feed, "BTC/USD"))
                assert venue.book_subscribes("BTC/USD") == 2
                await venue.update("BTC/USD", ("45283.4", "0"))
                await wait_until(lambda: feed.stats.checksum_checks >= 3)
                assert valid(feed, "BTC/USD")
                assert feed.stats.checksum_failures == 0

    run(main())


def test_a_checksum_mismatch_resubscribes_that_book_only() -> None:
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, statuses = make(url, ["BTC/USD", "ETH/USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC/USD", "ETH/USD"))
                await venue.update("BTC/USD", ("45283.6", "0.50000000"), corrupt=True)
                await wait_until(lambda: feed.stats.checksum_failures == 1)
                await wait_until(
                    lambda: live.resubscriber.resubscribes == 1 and valid(feed, "BTC/USD")
                )
                unsubscribes = [
                    m["params"] for m in venue.received if m.get("method") == "unsubscribe"
                ]
                assert unsubscribes == [{"channel": "book", "symbol": ["BTC/USD"], "depth": 10}]
                assert venue.book_subscribes("BTC/USD") == 2
                assert venue.book_subscribes("ETH/USD") == 1
                assert statuses.invalid("ETH/USD") == []
                assert live.session.stats.connects == 1

    run(main())


def test_a_stream_that_keeps_breaking_is_resubscribed_less_and_less_often() -> None:
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, _ = make(url, ["BTC/USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC/USD"))
                # Every fresh snapshot is followed by a corrupted update, for 0.8 s.
                loop = asyncio.get_running_loop()
                end = loop.time() + 0.8
                while loop.time() < end:
                    if valid(feed, "BTC/USD"):
                        await venue.update("BTC/USD", ("45283.6", "0.50000000"), corrupt=True)
                    await asyncio.sleep(0.005)
            # Intervals 0.05, 0.1, 0.2, 0.4, 0.4 ...: at most 5 in 0.8 s, where a
            # resubscription on every failure would have made about 160.
            assert 2 <= live.resubscriber.resubscribes <= 5
            assert venue.book_subscribes("BTC/USD") == 1 + live.resubscriber.resubscribes

    run(main())


def test_a_reconnect_storm_ends_with_valid_books_one_subscription_each_and_no_leaked_tasks() -> (
    None
):
    venue = KrakenV2Venue()

    async def main() -> None:
        async with loopback(venue.handler, "/v2") as url:
            feed, live, _ = make(url, ["BTC/USD", "ETH/USD"])
            async with running(live):
                for drop in range(1, 21):
                    # Drop each connection once its two books have their snapshots.
                    def connected_and_synced(drop: int = drop) -> bool:
                        return (
                            venue.connections == drop
                            and len(venue.open) == 1
                            and venue.snapshots_sent >= 2 * drop
                        )

                    await wait_until(connected_and_synced)
                    await venue.drop_all()
                await wait_until(
                    lambda: venue.connections == 21 and valid(feed, "BTC/USD", "ETH/USD")
                )
                await asyncio.sleep(0.1)  # time for any duplicate to show
                assert len(venue.open) == 1
                (live_subscriptions,) = venue.live.values()
                assert live_subscriptions == {
                    (channel, pair): 1
                    for channel in ("book", "trade", "ticker")
                    for pair in ("BTC/USD", "ETH/USD")
                }
                assert live.session.stats.connects == 21
                assert live.resubscriber.resubscribes == 0
        await no_tasks_left()

    run(main())


def test_v1_subscribes_with_events_and_pings_with_the_v1_event() -> None:
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            # Appended one by one: the test reads the list while the connection lives.
            received.append(orjson.loads(raw))  # noqa: PERF401

    async def main() -> None:
        async with loopback(handler, "/") as url:
            bus = Bus()
            live = KrakenMarketData(
                KrakenFeed(bus),
                ["XBT/USD"],
                version=1,
                url=url,
                depth=100,
                ping_after_s=0.05,
                backoff=fast_backoff(),
            )
            async with running(live):
                await wait_until(lambda: {"event": "ping"} in received)
        assert received[:3] == [
            {
                "event": "subscribe",
                "pair": ["XBT/USD"],
                "subscription": {"name": "book", "depth": 100},
            },
            {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}},
            {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "spread"}},
        ]

    run(main())


@pytest.mark.parametrize(("option", "value"), [("depth", 20), ("version", 3)])
def test_a_depth_or_version_kraken_does_not_offer_is_refused(option: str, value: int) -> None:
    with pytest.raises(ValueError, match=option):
        KrakenMarketData(KrakenFeed(Bus()), ["BTC/USD"], **{option: value})  # type: ignore[arg-type]
