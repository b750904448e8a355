"""Bybit live transport against loopback servers that speak Bybit's v5 public websocket.

Two servers play the spot and the linear endpoints (paths ``/v5/public/spot``
and ``/v5/public/linear``, which is how the feed tells the markets apart).
They answer ``subscribe``/``unsubscribe``/``ping`` operations as Bybit's
connect page shows, send an orderbook snapshot for each orderbook topic
subscribed, and deltas whose ``u`` follows the last one — or skips one, when
the test asks for a gap. The levels are those of the Bybit adapter fixture.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from live_venue import StatusLog, fast_backoff, loopback, no_tasks_left, run, running, wait_until
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from kernel.adapters.bybit.feed import BybitFeed
from kernel.bus.bus import Bus
from kernel.live.bybit import BybitMarketData
from tradekernel_sdk.types import BookState

# (bids, asks) per market, from tests/adapters/bybit/fixtures/bybit_spot_linear.jsonl.
LEVELS = {
    "spot": ([["17000.10", "0.100000"], ["17000.00", "1.000000"]], [["17000.30", "0.200000"]]),
    "linear": (
        [["17440.00", "40.833"], ["17439.50", "0.513"]],
        [["17440.50", "78.815"], ["17441.00", "8.858"]],
    ),
}


class BybitVenue:
    """One market's v5 public endpoint."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.received: list[dict[str, Any]] = []
        self.open: list[ServerConnection] = []
        self.connections = 0
        self.snapshots_sent = 0
        # Per open connection: topic -> live subscriptions; per topic the last u sent.
        self.live: dict[ServerConnection, dict[str, int]] = {}
        self.last_u: dict[str, int] = {}

    def ops(self, op: str) -> list[list[str]]:
        return [m.get("args", []) for m in self.received if m.get("op") == op]

    def subscribes_of(self, topic: str) -> int:
        return sum(args.count(topic) for args in self.ops("subscribe"))

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
        op = message["op"]
        if op == "ping":
            if self.market == "spot":
                answer = {"success": True, "ret_msg": "pong", "conn_id": "c1", "op": "ping"}
            else:
                answer = {"req_id": "", "op": "pong", "args": ["1700000000000"], "conn_id": "c2"}
            await ws.send(orjson.dumps(answer))
            return
        live = self.live[ws]
        await ws.send(orjson.dumps({"success": True, "ret_msg": "", "conn_id": "c1", "op": op}))
        for topic in message["args"]:
            if op == "unsubscribe":
                live.pop(topic, None)
                continue
            live[topic] = live.get(topic, 0) + 1
            if topic.startswith("orderbook."):
                await ws.send(self._snapshot(topic))

    def _snapshot(self, topic: str) -> bytes:
        bids, asks = LEVELS[self.market]
        if topic.startswith("orderbook.1."):
            bids, asks = bids[:1], asks[:1]
        # Bybit numbers snapshots on; u == 1 would mean a service restart.
        u = self.last_u[topic] = self.last_u.get(topic, 100) + 1
        self.snapshots_sent += 1
        return self._message(topic, "snapshot", bids, asks, u)

    @staticmethod
    def _message(topic: str, kind: str, bids: list[Any], asks: list[Any], u: int) -> bytes:
        return orjson.dumps(
            {
                "topic": topic,
                "type": kind,
                "ts": 1700000000090 + u,
                "data": {
                    "s": topic.rpartition(".")[2],
                    "b": bids,
                    "a": asks,
                    "u": u,
                    "seq": u * 10,
                },
                "cts": 1700000000087 + u,
            }
        )

    async def delta(self, topic: str, bid: list[str], *, gap: bool = False) -> None:
        """Send a delta on ``topic`` to every connection subscribed to it."""
        u = self.last_u[topic] = self.last_u[topic] + (2 if gap else 1)
        frame = self._message(topic, "delta", [bid], [], u)
        for ws in list(self.open):
            if self.live.get(ws, {}).get(topic):
                await ws.send(frame)

    async def drop_all(self) -> None:
        for ws in list(self.open):
            await ws.close(code=1011, reason="venue restart")


def make(feed: BybitFeed, url: str, market: str, **options: Any) -> BybitMarketData:
    return BybitMarketData(
        feed,
        ["BTCUSDT"],
        market=market,  # type: ignore[arg-type]
        url=url,
        backoff=fast_backoff(),
        min_resync_interval_s=0.05,
        max_resync_interval_s=0.4,
        **options,
    )


def valid(feed: BybitFeed, url: str, *topics: str) -> bool:
    return all(feed.book_state_of(url, topic) is BookState.VALID for topic in topics)


BOOK = "orderbook.50.BTCUSDT"
TOP = "orderbook.1.BTCUSDT"


def test_spot_and_linear_books_subscribe_apart_and_become_valid() -> None:
    spot, linear = BybitVenue("spot"), BybitVenue("linear")

    async def main() -> None:
        async with (
            loopback(spot.handler, "/v5/public/spot") as spot_url,
            loopback(linear.handler, "/v5/public/linear") as linear_url,
        ):
            feed = BybitFeed(Bus())
            spot_live, linear_live = make(feed, spot_url, "spot"), make(feed, linear_url, "linear")
            async with running(spot_live), running(linear_live):
                await wait_until(
                    lambda: valid(feed, spot_url, BOOK, TOP) and valid(feed, linear_url, BOOK, TOP)
                )
                await spot.delta(BOOK, ["17000.20", "0.500000"])
                await wait_until(lambda: feed.book("spot:BTCUSDT").best_bid()[0] == 1700020)  # type: ignore[union-attr,index]
                assert feed.book_state("linear:BTCUSDT") is BookState.VALID
            for venue in (spot, linear):
                assert venue.ops("subscribe") == [[BOOK, TOP, "publicTrade.BTCUSDT"]]

    run(main())


def test_more_than_ten_topics_are_split_into_requests_of_ten() -> None:
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            received.append(orjson.loads(raw))  # noqa: PERF401  (read while it fills)

    async def main() -> None:
        async with loopback(handler, "/v5/public/spot") as url:
            symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
            live = BybitMarketData(BybitFeed(Bus()), symbols, url=url, backoff=fast_backoff())
            async with running(live):
                await wait_until(lambda: len(received) == 2)
        assert [len(m["args"]) for m in received] == [10, 2]
        assert sorted(received[0]["args"] + received[1]["args"]) == sorted(
            f"{kind}.{s}"
            for s in symbols
            for kind in ("orderbook.50", "orderbook.1", "publicTrade")
        )

    run(main())


def test_silence_sends_op_ping_and_the_pong_keeps_the_connection() -> None:
    venue = BybitVenue("linear")

    async def main() -> None:
        async with loopback(venue.handler, "/v5/public/linear") as url:
            feed = BybitFeed(Bus())
            live = make(feed, url, "linear", ping_after_s=0.1, idle_timeout_s=1.0)
            async with running(live):
                await wait_until(lambda: len(venue.ops("ping")) >= 2)
                assert live.session.stats.connects == 1
                assert valid(feed, url, BOOK, TOP)
            assert feed.stats.malformed_frames == 0  # the pongs were understood
            assert {"op": "ping"} in venue.received

    run(main())


def test_a_dropped_connection_invalidates_at_once_then_reconnects_resubscribes_and_resyncs() -> (
    None
):
    venue = BybitVenue("spot")

    async def main() -> None:
        async with loopback(venue.handler, "/v5/public/spot") as url:
            bus = Bus()
            statuses = StatusLog(bus, "bybit")
            feed = BybitFeed(bus)
            live = make(feed, url, "spot")
            async with running(live):
                await wait_until(lambda: valid(feed, url, BOOK, TOP))
                await venue.drop_all()
                await wait_until(
                    lambda: any("connection lost" in r for r in statuses.invalid("spot:BTCUSDT"))
                )
                await wait_until(lambda: venue.connections == 2 and valid(feed, url, BOOK, TOP))
                await venue.delta(BOOK, ["17000.20", "0.500000"])
                await wait_until(lambda: feed.book_of(url, BOOK).best_bid()[0] == 1700020)  # type: ignore[union-attr,index]
                assert venue.subscribes_of(BOOK) == 2
                assert feed.stats.gaps == 0

    run(main())


def test_a_u_gap_resubscribes_that_topic_only() -> None:
    spot, linear = BybitVenue("spot"), BybitVenue("linear")

    async def main() -> None:
        async with (
            loopback(spot.handler, "/v5/public/spot") as spot_url,
            loopback(linear.handler, "/v5/public/linear") as linear_url,
        ):
            feed = BybitFeed(Bus())
            spot_live, linear_live = make(feed, spot_url, "spot"), make(feed, linear_url, "linear")
            async with running(spot_live), running(linear_live):
                await wait_until(
                    lambda: valid(feed, spot_url, BOOK, TOP) and valid(feed, linear_url, BOOK, TOP)
                )
                await spot.delta(BOOK, ["17000.20", "0.500000"], gap=True)
                await wait_until(lambda: feed.stats.gaps == 1)
                await wait_until(
                    lambda: spot_live.resubscriber.resubscribes == 1 and valid(feed, spot_url, BOOK)
                )
                assert spot.ops("unsubscribe") == [[BOOK]]
                assert spot.ops("subscribe")[1:] == [[BOOK]]
                assert linear.ops("unsubscribe") == []
                assert linear_live.resubscriber.resubscribes == 0
                assert valid(feed, spot_url, TOP) and valid(feed, linear_url, BOOK, TOP)

    run(main())


def test_a_reconnect_storm_ends_with_valid_books_one_subscription_each_and_no_leaked_tasks() -> (
    None
):
    venue = BybitVenue("linear")

    async def main() -> None:
        async with loopback(venue.handler, "/v5/public/linear") as url:
            feed = BybitFeed(Bus())
            live = make(feed, url, "linear")
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
                await wait_until(lambda: venue.connections == 21 and valid(feed, url, BOOK, TOP))
                await asyncio.sleep(0.1)  # time for any duplicate to show
                assert len(venue.open) == 1
                (live_topics,) = venue.live.values()
                assert live_topics == {BOOK: 1, TOP: 1, "publicTrade.BTCUSDT": 1}
                assert live.resubscriber.resubscribes == 0
        await no_tasks_left()

    run(main())


def test_an_unknown_market_or_an_empty_symbol_list_is_refused() -> None:
    with pytest.raises(ValueError, match="market"):
        BybitMarketData(BybitFeed(Bus()), ["BTCUSDT"], market="option")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        BybitMarketData(BybitFeed(Bus()), [])
