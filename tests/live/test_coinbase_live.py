"""Coinbase live transport against a loopback server that speaks the Advanced Trade websocket.

The server numbers every message of a connection with ``sequence_num`` from 0,
answers each subscribe or unsubscribe with a ``subscriptions`` message,
follows a ``level2`` subscription with an ``l2_data`` snapshot per product
(levels from the Coinbase adapter fixture), and sends heartbeats, updates,
sequence gaps and crossed books when the test asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from live_venue import StatusLog, fast_backoff, loopback, no_tasks_left, run, running, wait_until
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from kernel.adapters.coinbase.feed import CoinbaseFeed
from kernel.bus.bus import Bus
from kernel.live.coinbase import CoinbaseMarketData
from tradekernel_sdk.types import BookState

STAMP = "2023-02-09T20:32:50.714964855Z"
# (side, price, quantity) per product; BTC-USD from the adapter fixture's snapshot.
SNAPSHOTS = {
    "BTC-USD": [
        ("bid", "21921.73", "0.06317902"),
        ("bid", "21921.3", "0.02"),
        ("offer", "21921.74", "0.1"),
        ("offer", "21922.5", "1.5"),
    ],
    "ETH-USD": [("bid", "1545.1", "2.5"), ("offer", "1545.2", "0.75")],
}


class CoinbaseVenue:
    """The Advanced Trade market data endpoint."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.open: list[ServerConnection] = []
        self.connections = 0
        self.snapshots_sent = 0
        self.live: dict[ServerConnection, dict[tuple[str, str], int]] = {}
        self._sequence: dict[ServerConnection, int] = {}

    def messages(self, kind: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for _, m in self.received
            if m["type"] == kind and (channel is None or m["channel"] == channel)
        ]

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.open.append(ws)
        self.live[ws] = {}
        self._sequence[ws] = 0
        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                self.received.append((loop.time(), message))
                await self._answer(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.open.remove(ws)
            del self.live[ws]

    async def send(
        self, ws: ServerConnection, channel: str, events: list[Any], *, skip: int = 0
    ) -> None:
        """Send one envelope; ``skip`` numbers are left out, as if those messages were lost."""
        self._sequence[ws] += skip
        sequence = self._sequence[ws]
        self._sequence[ws] += 1
        envelope = {
            "channel": channel,
            "client_id": "",
            "timestamp": STAMP,
            "sequence_num": sequence,
            "events": events,
        }
        await ws.send(orjson.dumps(envelope))

    async def _answer(self, ws: ServerConnection, message: dict[str, Any]) -> None:
        channel = message["channel"]
        products = message.get("product_ids") or [channel]
        live = self.live[ws]
        for product in products:
            if message["type"] == "subscribe":
                live[(channel, product)] = live.get((channel, product), 0) + 1
            else:
                live.pop((channel, product), None)
        listing: dict[str, list[str]] = {}
        for ch, product in live:
            listing.setdefault(ch, []).append(product)
        await self.send(ws, "subscriptions", [{"subscriptions": listing}])
        if message["type"] == "subscribe" and channel == "level2":
            for product in products:
                updates = [
                    {"side": side, "event_time": STAMP, "price_level": p, "new_quantity": q}
                    for side, p, q in SNAPSHOTS[product]
                ]
                self.snapshots_sent += 1
                await self.send(
                    ws, "l2_data", [{"type": "snapshot", "product_id": product, "updates": updates}]
                )

    async def update(self, product: str, side: str, price: str, qty: str, *, skip: int = 0) -> None:
        """Send one level2 update to every connection subscribed to ``product``."""
        event = {
            "type": "update",
            "product_id": product,
            "updates": [
                {"side": side, "event_time": STAMP, "price_level": price, "new_quantity": qty}
            ],
        }
        for ws in list(self.open):
            if self.live.get(ws, {}).get(("level2", product)):
                await self.send(ws, "l2_data", [event], skip=skip)

    async def heartbeat(self) -> None:
        for ws in list(self.open):
            if self.live.get(ws, {}).get(("heartbeats", "heartbeats")):
                counter = self._sequence[ws]
                await self.send(
                    ws, "heartbeats", [{"current_time": STAMP, "heartbeat_counter": counter}]
                )

    async def drop_all(self) -> None:
        for ws in list(self.open):
            await ws.close(code=1011, reason="venue restart")


@contextlib.asynccontextmanager
async def heartbeating(venue: CoinbaseVenue, period_s: float = 0.05) -> AsyncIterator[None]:
    """Send heartbeats every ``period_s`` for the block, as Coinbase does every second."""

    async def beat() -> None:
        while True:
            await venue.heartbeat()
            await asyncio.sleep(period_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make(
    url: str, products: list[str], **options: Any
) -> tuple[CoinbaseFeed, CoinbaseMarketData, StatusLog]:
    bus = Bus()
    feed = CoinbaseFeed(bus)
    statuses = StatusLog(bus, "coinbase")
    options = {"send_gap_s": 0.0} | options
    live = CoinbaseMarketData(
        feed,
        products,
        url=url,
        backoff=fast_backoff(),
        min_resync_interval_s=0.05,
        max_resync_interval_s=0.4,
        **options,
    )
    return feed, live, statuses


def valid(feed: CoinbaseFeed, *products: str) -> bool:
    return all(feed.book_state(product) is BookState.VALID for product in products)


def test_subscribes_one_channel_per_message_heartbeats_first_and_the_books_become_valid() -> None:
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, _ = make(url, ["BTC-USD", "ETH-USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC-USD", "ETH-USD"))
                await venue.update("BTC-USD", "bid", "21921.5", "0.3")
                await wait_until(lambda: len(feed.book("BTC-USD")) == 5)  # type: ignore[arg-type]
                assert feed.book("BTC-USD").bid_levels() == [  # type: ignore[union-attr]
                    (2192173, 6317902),
                    (2192150, 30000000),
                    (2192130, 2000000),
                ]
            assert [m for _, m in venue.received] == [
                {"type": "subscribe", "channel": "heartbeats"},
                {"type": "subscribe", "channel": "level2", "product_ids": ["BTC-USD", "ETH-USD"]},
                {
                    "type": "subscribe",
                    "channel": "market_trades",
                    "product_ids": ["BTC-USD", "ETH-USD"],
                },
                {"type": "subscribe", "channel": "ticker", "product_ids": ["BTC-USD", "ETH-USD"]},
            ]
            assert feed.stats.gaps == 0 and feed.stats.malformed_frames == 0

    run(main())


def test_heartbeats_keep_a_quiet_connection_and_their_absence_reconnects() -> None:
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, _ = make(url, ["BTC-USD"], idle_timeout_s=0.3)
            async with running(live):
                async with heartbeating(venue):
                    await asyncio.sleep(0.7)  # more than twice the idle timeout
                    assert live.session.stats.connects == 1
                    assert feed.heartbeats[url] > 5
                    assert valid(feed, "BTC-USD")
                # No heartbeat now: the session gives up on the silent connection.
                await wait_until(lambda: venue.connections == 2 and valid(feed, "BTC-USD"))
                assert live.session.stats.idle_timeouts == 1

    run(main())


def test_a_dropped_connection_invalidates_at_once_then_reconnects_resubscribes_and_resyncs() -> (
    None
):
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, statuses = make(url, ["BTC-USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC-USD"))
                await venue.drop_all()
                await wait_until(
                    lambda: any("connection lost" in r for r in statuses.invalid("BTC-USD"))
                )
                await wait_until(lambda: venue.connections == 2 and valid(feed, "BTC-USD"))
                # The new connection numbers from 0 again and that is no gap.
                await venue.update("BTC-USD", "offer", "21921.74", "0")
                await wait_until(lambda: feed.book("BTC-USD").best_ask()[0] == 2192250)  # type: ignore[union-attr,index]
                assert len(venue.messages("subscribe", "level2")) == 2
                assert feed.stats.gaps == 0

    run(main())


def test_a_crossed_book_resubscribes_that_product_only() -> None:
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, statuses = make(url, ["BTC-USD", "ETH-USD"])
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC-USD", "ETH-USD"))
                await venue.update("BTC-USD", "bid", "21930", "1")  # above the best offer
                await wait_until(
                    lambda: live.resubscriber.resubscribes == 1 and valid(feed, "BTC-USD")
                )
                assert venue.messages("unsubscribe") == [
                    {"type": "unsubscribe", "channel": "level2", "product_ids": ["BTC-USD"]}
                ]
                assert statuses.invalid("ETH-USD") == []
                assert live.session.stats.connects == 1

    run(main())


def test_a_sequence_gap_resubscribes_every_book_of_the_connection_spaced_out() -> None:
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, _ = make(url, ["BTC-USD", "ETH-USD"], send_gap_s=0.1)
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC-USD", "ETH-USD"))
                await venue.update("BTC-USD", "bid", "21921.5", "0.3", skip=1)
                await wait_until(lambda: feed.stats.gaps == 1)
                await wait_until(
                    lambda: (
                        live.resubscriber.resubscribes == 2 and valid(feed, "BTC-USD", "ETH-USD")
                    )
                )
            unsubscribes = [(t, m) for t, m in venue.received if m["type"] == "unsubscribe"]
            assert sorted(m["product_ids"][0] for _, m in unsubscribes) == ["BTC-USD", "ETH-USD"]
            assert all(m["channel"] == "level2" for _, m in unsubscribes)
            assert unsubscribes[1][0] - unsubscribes[0][0] >= 0.09  # send_gap_s apart

    run(main())


def test_a_reconnect_storm_ends_with_valid_books_one_subscription_each_and_no_leaked_tasks() -> (
    None
):
    venue = CoinbaseVenue()

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, _ = make(url, ["BTC-USD", "ETH-USD"])
            async with running(live):
                for drop in range(1, 21):

                    def connected_and_synced(drop: int = drop) -> bool:
                        return (
                            venue.connections == drop
                            and len(venue.open) == 1
                            and venue.snapshots_sent >= 2 * drop
                        )

                    await wait_until(connected_and_synced)
                    await venue.drop_all()
                await wait_until(
                    lambda: venue.connections == 21 and valid(feed, "BTC-USD", "ETH-USD")
                )
                await asyncio.sleep(0.1)  # time for any duplicate to show
                assert len(venue.open) == 1
                (live_subscriptions,) = venue.live.values()
                assert live_subscriptions == {("heartbeats", "heartbeats"): 1} | {
                    (channel, product): 1
                    for channel in ("level2", "market_trades", "ticker")
                    for product in ("BTC-USD", "ETH-USD")
                }
                assert live.resubscriber.resubscribes == 0
        await no_tasks_left()

    run(main())


def test_a_jwt_goes_fresh_into_every_message_and_never_into_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    venue = CoinbaseVenue()
    issued: list[str] = []

    def jwt() -> str:
        issued.append(f"eyJ-test-token-{len(issued)}")
        return issued[-1]

    async def main() -> None:
        async with loopback(venue.handler, "/") as url:
            feed, live, _ = make(url, ["BTC-USD"], jwt=jwt)
            async with running(live):
                await wait_until(lambda: valid(feed, "BTC-USD"))
                await venue.update("BTC-USD", "bid", "21930", "1")  # crossed: resubscribe
                await wait_until(
                    lambda: live.resubscriber.resubscribes == 1 and valid(feed, "BTC-USD")
                )

    with caplog.at_level(logging.DEBUG):
        run(main())
    sent = [m["jwt"] for _, m in venue.received]
    assert sent == issued and len(set(sent)) == len(sent) == 6
    # The kernel never logs a token; only the websockets library's own DEBUG frame
    # dump could show one (docs/venues.md: keep it off when authenticating).
    leaks = [r for r in caplog.records if "test-token" in r.getMessage()]
    assert all(r.name.startswith("websockets.") and r.levelno == logging.DEBUG for r in leaks)
