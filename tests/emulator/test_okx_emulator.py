"""The OKX emulator: public books and trades validated by the kernel's OKX feed, signed orders."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from time import time_ns

import aiohttp
import orjson
import websockets
from emulator_clients import OKX_REST, OKX_WS, connect, get_json, okx_signed, okx_timestamp, run

from kernel.adapters.base import RawFrame
from kernel.adapters.okx import OkxFeed, load_okx_instruments
from kernel.bus import Bus
from kernel.emulator import Emulator
from tradekernel_sdk.types import BookState

INSTRUMENTS = ("BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP")


def _subscribe(channels: tuple[str, ...], instruments: tuple[str, ...] = INSTRUMENTS) -> str:
    args = [{"channel": c, "instId": i} for c in channels for i in instruments]
    return orjson.dumps({"op": "subscribe", "args": args}).decode()


def _feed() -> OkxFeed:
    return OkxFeed(Bus(), instruments=load_okx_instruments(OKX_REST))


async def _read_okx(
    ws: websockets.ClientConnection,
    feed: OkxFeed,
    *,
    limit: int | None = None,
    idle_s: float = 1.0,
) -> list[dict]:
    """Give frames to ``feed`` until ``limit``, ``idle_s`` of silence or close; return them."""
    messages = []
    while limit is None or len(messages) < limit:
        try:
            text = await asyncio.wait_for(ws.recv(), idle_s)
        except (TimeoutError, websockets.ConnectionClosed):
            break
        payload = text.encode() if isinstance(text, str) else text
        feed.on_frame(RawFrame(time_ns(), payload, "ws/v5/public"))
        messages.append(orjson.loads(payload))
    return messages


def test_okx_books_pass_the_feeds_checksum_and_sequence_validation() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", [OKX_REST, OKX_WS]) as emulator,
            connect(f"{emulator.ws_url}/ws/v5/public") as ws,
        ):
            feed = _feed()
            await ws.send(_subscribe(("books", "trades")))
            messages = await _read_okx(ws, feed)
        acks = [m for m in messages if m.get("event") == "subscribe"]
        assert len(acks) == 6
        stats = feed.stats
        assert stats.checksum_checks > 250
        assert stats.checksum_failures == 0
        assert stats.gaps == 0
        assert stats.malformed_frames == 0
        assert stats.trades > 0
        assert all(feed.book_state(i) is BookState.VALID for i in INSTRUMENTS)
        books = [m for m in messages if m.get("arg", {}).get("channel") == "books" and "data" in m]
        assert books[0]["action"] == "snapshot"
        assert books[0]["data"][0]["prevSeqId"] == -1

    run(scenario())


def test_a_late_subscriber_gets_a_snapshot_that_passes_the_checksum() -> None:
    async def scenario() -> None:
        # Paced at five times recorded speed, so updates follow the late snapshot.
        async with (
            Emulator("okx", [OKX_REST, OKX_WS], speed=5) as emulator,
            connect(f"{emulator.ws_url}/ws/v5/public") as early,
            connect(f"{emulator.ws_url}/ws/v5/public") as late,
        ):
            early_feed = _feed()
            late_feed = _feed()
            await early.send(_subscribe(("books",), ("BTC-USDT",)))
            seen = await _read_okx(early, early_feed, limit=8)
            emulator.pause()
            seen += await _read_okx(early, early_feed, idle_s=0.3)
            await late.send(_subscribe(("books",), ("BTC-USDT",)))
            late_messages = await _read_okx(late, late_feed, limit=2)
            emulator.resume()
            late_messages += await _read_okx(late, late_feed, idle_s=1.5)
        snapshot = late_messages[1]
        assert snapshot["action"] == "snapshot"
        assert snapshot["data"][0]["seqId"] == seen[-1]["data"][0]["seqId"]
        assert len(late_messages) > 5  # updates followed
        assert late_feed.stats.checksum_checks == len(late_messages) - 1
        assert late_feed.stats.checksum_failures == 0
        assert late_feed.stats.gaps == 0
        assert late_feed.book_state("BTC-USDT") is BookState.VALID

    run(scenario())


def test_a_stale_subscription_snapshot_is_caught_by_the_sequence_check() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", [OKX_REST, OKX_WS], speed=5) as emulator,
            connect(f"{emulator.ws_url}/ws/v5/public") as early,
            connect(f"{emulator.ws_url}/ws/v5/public") as late,
        ):
            await early.send(_subscribe(("books",), ("BTC-USDT",)))
            seen = await _read_okx(early, _feed(), limit=8)
            emulator.pause()
            seen += await _read_okx(early, _feed(), idle_s=0.3)
            emulator.faults.stale_snapshot()
            late_feed = _feed()
            await late.send(_subscribe(("books",), ("BTC-USDT",)))
            late_messages = await _read_okx(late, late_feed, limit=2)
            emulator.resume()
            await _read_okx(late, late_feed, limit=3)
        stale = late_messages[1]["data"][0]
        assert stale["seqId"] < seen[-1]["data"][0]["seqId"]
        assert emulator.stats.stale_snapshots == 1
        assert late_feed.stats.gaps == 1  # the first update's prevSeqId is not the snapshot's
        assert late_feed.book_state("BTC-USDT") is BookState.INVALID

    run(scenario())


def test_a_dropped_update_is_a_sequence_gap_the_feed_detects() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", [OKX_REST, OKX_WS]) as emulator,
            connect(f"{emulator.ws_url}/ws/v5/public") as ws,
        ):
            emulator.faults.drop_frames(1, after=5, match="books:BTC-USDT")
            feed = _feed()
            await ws.send(_subscribe(("books",), ("BTC-USDT",)))
            await _read_okx(ws, feed)
        assert emulator.stats.frames_dropped == 1
        assert feed.stats.gaps == 1
        assert feed.book_state("BTC-USDT") is BookState.INVALID

    run(scenario())


def test_ping_is_answered_pong_and_bad_requests_get_error_events() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", [OKX_REST, OKX_WS]) as emulator,
            connect(f"{emulator.ws_url}/ws/v5/public") as ws,
        ):
            await ws.send("ping")
            pong = await asyncio.wait_for(ws.recv(), 5)
            await ws.send('{"op":"subscribe","args":[{"channel":"nope","instId":"BTC-USDT"}]}')
            unknown = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send("{not json")
            invalid = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert pong == "pong"
        assert (unknown["event"], unknown["code"]) == ("error", "60018")
        assert (invalid["event"], invalid["code"]) == ("error", "60012")

    run(scenario())


def test_signed_orders_rest_fill_and_cancel_against_the_replayed_book() -> None:
    async def scenario() -> None:
        async with Emulator("okx", [OKX_REST, OKX_WS]) as emulator, aiohttp.ClientSession() as http:
            emulator.start_replay()
            await asyncio.wait_for(emulator.market.finished.wait(), 10)
            _, books, _ = await get_json(
                http, f"{emulator.http_url}/api/v5/market/books", instId="BTC-USDT", sz="1"
            )
            ask_px, ask_sz = books["data"][0]["asks"][0][:2]
            resting = {
                "instId": "BTC-USDT",
                "tdMode": "cash",
                "side": "buy",
                "ordType": "limit",
                "px": "20000",
                "sz": "0.001",
                "clOrdId": "rest1",
            }
            placed = await okx_signed(http, emulator, "POST", "/api/v5/trade/order", resting)
            pending = await okx_signed(
                http, emulator, "GET", "/api/v5/trade/orders-pending?instId=BTC-USDT"
            )
            canceled = await okx_signed(
                http,
                emulator,
                "POST",
                "/api/v5/trade/cancel-order",
                {"instId": "BTC-USDT", "clOrdId": "rest1"},
            )
            taking = {
                "instId": "BTC-USDT",
                "tdMode": "cash",
                "side": "buy",
                "ordType": "ioc",
                "px": ask_px,
                "sz": ask_sz,
                "clOrdId": "take1",
            }
            taken = await okx_signed(http, emulator, "POST", "/api/v5/trade/order", taking)
            order_id = taken[1]["data"][0]["ordId"]
            filled = await okx_signed(
                http, emulator, "GET", f"/api/v5/trade/order?instId=BTC-USDT&ordId={order_id}"
            )
            after = await okx_signed(
                http, emulator, "GET", "/api/v5/trade/orders-pending?instId=BTC-USDT"
            )
        assert placed == (200, {"code": "0", "msg": "", "data": [placed[1]["data"][0]]})
        assert placed[1]["data"][0]["sCode"] == "0"
        listed = pending[1]["data"]
        assert [(o["clOrdId"], o["state"], o["px"], o["sz"]) for o in listed] == [
            ("rest1", "live", "20000", "0.001")
        ]
        assert canceled[1]["data"][0]["sCode"] == "0"
        order = filled[1]["data"][0]
        assert (order["state"], order["accFillSz"], order["fillPx"]) == ("filled", ask_sz, ask_px)
        assert Decimal(order["avgPx"]) == Decimal(ask_px)
        assert after[1]["data"] == []

    run(scenario())


def test_a_wrong_signature_or_a_stale_timestamp_is_refused() -> None:
    async def scenario() -> None:
        async with Emulator("okx", [OKX_REST, OKX_WS]) as emulator, aiohttp.ClientSession() as http:
            path = "/api/v5/trade/orders-pending"
            wrong = await okx_signed(http, emulator, "GET", path, secret="not-the-secret")
            stale = await okx_signed(
                http, emulator, "GET", path, timestamp=okx_timestamp(offset_ms=-60_000)
            )
            emulator.faults.rate_limit(429)
            limited = await okx_signed(http, emulator, "GET", path)
            served = await okx_signed(http, emulator, "GET", path)
        assert wrong == (401, {"msg": "Invalid Sign.", "code": "50113"})
        assert stale == (401, {"msg": "Timestamp request expired.", "code": "50102"})
        assert limited == (429, {"msg": "Too Many Requests", "code": "50011"})
        assert served == (200, {"code": "0", "msg": "", "data": []})
        assert emulator.stats.signature_rejections == 1
        assert emulator.stats.timestamp_rejections == 1

    run(scenario())
