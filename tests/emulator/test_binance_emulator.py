"""The Binance emulator, spoken to over loopback by real clients and the kernel's own feed."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal

import aiohttp
import orjson
import pytest
import websockets
from emulator_clients import (
    BINANCE_BTC,
    BINANCE_ETH,
    BTC_STREAMS,
    binance_depth,
    binance_signed,
    connect,
    get_json,
    read_into,
    run,
)

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import BinanceFeed, instruments_from_exchange_info
from kernel.bus import Bus
from kernel.emulator import Emulator
from tradekernel_sdk.types import BookState


def _stream_url(emulator: Emulator, streams: str = BTC_STREAMS) -> str:
    return f"{emulator.ws_url}/stream?streams={streams}"


async def _synced_feed(
    emulator: Emulator, http: aiohttp.ClientSession, ws: websockets.ClientConnection, url: str
) -> BinanceFeed:
    """Do Binance's local-book procedure: first diffs, then the REST snapshot.

    The replay is paused while the client catches up and takes the snapshot,
    so that what follows (a fault, the rest of the stream) comes after it; the
    caller resumes it.
    """
    feed = BinanceFeed(Bus())
    await read_into(ws, feed, url, limit=3)
    emulator.pause()
    await read_into(ws, feed, url, idle_s=0.3)
    snapshot = await binance_depth(http, emulator)
    feed.on_frame(RawFrame(time.time_ns(), snapshot, "rest:depth:BTCUSDT"))
    return feed


# -- market data ----------------------------------------------------------------


def test_snapshot_and_stream_bridge_through_the_binance_feed_with_no_gaps() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC, BINANCE_ETH]) as emulator:
            url = _stream_url(emulator)
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = await _synced_feed(emulator, http, ws, url)
                emulator.resume()
                await read_into(ws, feed, url)
                assert emulator.market.finished.is_set()
                final = orjson.loads(await binance_depth(http, emulator, limit=5000))

        stats = feed.stats
        assert feed.book_state("BTCUSDT") is BookState.VALID
        assert stats.gaps == 0
        assert stats.malformed_frames == 0
        assert stats.book_updates > 900
        assert stats.oracle_checks > 100
        assert stats.oracle_mismatches == 0
        # After the last frame, the book built from the stream is the book the venue serves.
        instrument = feed.instrument("BTCUSDT")
        book = feed.book("BTCUSDT")
        assert instrument is not None and book is not None
        served_bids = [(instrument.price(p), instrument.size(q)) for p, q in final["bids"][:50]]
        served_asks = [(instrument.price(p), instrument.size(q)) for p, q in final["asks"][:50]]
        assert book.bid_levels(50) == served_bids
        assert book.ask_levels(50) == served_asks
        assert final["lastUpdateId"] == book.sequence

    run(scenario())


def test_raw_stream_sends_the_payload_without_the_envelope() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BINANCE_BTC]) as emulator,
            connect(f"{emulator.ws_url}/ws/btcusdt@trade") as ws,
        ):
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["e"] == "trade"
        assert message["s"] == "BTCUSDT"
        assert "stream" not in message
        assert isinstance(message["p"], str)

    run(scenario())


def test_live_subscribe_is_acknowledged_and_listed() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BINANCE_BTC]) as emulator,
            connect(f"{emulator.ws_url}/ws") as ws,
        ):
            request = {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7}
            await ws.send(orjson.dumps(request).decode())
            assert orjson.loads(await ws.recv()) == {"result": None, "id": 7}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":8}')
            replies = []
            # The answer queues behind the frames already on their way (bounded read).
            for _ in range(5000):
                replies.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
                if replies[-1].get("id") == 8:
                    break
        assert replies[-1] == {"result": ["btcusdt@bookTicker"], "id": 8}
        tickers = replies[:-1]
        assert all("u" in r and "b" in r for r in tickers)
        assert tickers and all(r["s"] == "BTCUSDT" for r in tickers)

    run(scenario())


def test_exchange_info_describes_the_replayed_symbols_as_the_kernel_reads_them() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator, aiohttp.ClientSession() as http:
            status, body, headers = await get_json(http, f"{emulator.http_url}/api/v3/exchangeInfo")
        assert status == 200
        assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
        instruments = instruments_from_exchange_info("binance", body)
        btc = instruments["BTCUSDT"]
        assert (btc.price_precision, btc.size_precision) == (8, 8)
        assert btc.price_text(btc.tick) == "0.01000000"
        assert btc.size_text(btc.lot) == "0.00001000"

    run(scenario())


# -- faults on the stream ------------------------------------------------------------


def test_a_dropped_diff_is_a_gap_the_feed_detects() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator:
            url = _stream_url(emulator)
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = await _synced_feed(emulator, http, ws, url)
                emulator.faults.drop_frames(1, after=50, match="@depth")
                emulator.resume()
                await read_into(ws, feed, url)
        assert emulator.stats.frames_dropped == 1
        assert feed.stats.gaps == 1
        assert feed.book_state("BTCUSDT") is BookState.INVALID

    run(scenario())


def test_a_malformed_frame_is_counted_by_the_feed() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator:
            url = _stream_url(emulator)
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = await _synced_feed(emulator, http, ws, url)
                emulator.faults.malformed(1, after=10, match="@trade")
                emulator.resume()
                await read_into(ws, feed, url)
        assert emulator.stats.frames_malformed == 1
        assert feed.stats.malformed_frames == 1
        assert feed.stats.gaps == 0  # a trade lost is not a book gap

    run(scenario())


def test_disconnect_after_n_frames_closes_the_socket_abruptly() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator:
            emulator.faults.disconnect_after(25)
            received = 0
            async with connect(_stream_url(emulator)) as ws:
                with pytest.raises(websockets.ConnectionClosedError) as closed:
                    for _ in range(100):
                        await asyncio.wait_for(ws.recv(), 5)
                        received += 1
        assert received == 25
        assert closed.value.rcvd is None  # no close frame: the TCP connection just ended
        assert emulator.stats.disconnects == 1

    run(scenario())


def test_reordered_diffs_arrive_swapped_and_break_the_chain() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator:
            url = f"{emulator.ws_url}/stream?streams=btcusdt@depth@100ms"
            emulator.faults.reorder(after=5, match="@depth")
            async with connect(url) as ws:
                diffs = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(10)]
        first_ids = [d["data"]["U"] for d in diffs]
        assert first_ids[6] < first_ids[5]  # the sixth diff came after the seventh
        assert sorted(first_ids) == first_ids[:5] + sorted(first_ids[5:7]) + first_ids[7:]
        assert emulator.stats.frames_reordered == 1

    run(scenario())


def test_a_delayed_frame_holds_up_the_connection() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator:
            emulator.faults.delay(0.4, after=3)
            async with connect(_stream_url(emulator)) as ws:
                arrivals = []
                for _ in range(6):
                    await asyncio.wait_for(ws.recv(), 5)
                    arrivals.append(time.monotonic())
        pauses = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert max(pauses) >= 0.4
        assert pauses.index(max(pauses)) == 2  # between the third and the fourth frame
        assert emulator.stats.frames_delayed == 1

    run(scenario())


def test_a_stale_snapshot_does_not_bridge_and_a_fresh_one_does() -> None:
    async def scenario() -> None:
        # Paced (20 times recorded speed), so that the replay is still going after the
        # fresh snapshot.
        async with Emulator("binance", [BINANCE_BTC], speed=20) as emulator:
            url = _stream_url(emulator)
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = BinanceFeed(Bus())
                await read_into(ws, feed, url, limit=200)
                emulator.pause()
                await read_into(ws, feed, url, idle_s=0.3)
                emulator.faults.stale_snapshot()
                stale = await binance_depth(http, emulator)
                feed.on_frame(RawFrame(time.time_ns(), stale, "rest:depth:BTCUSDT"))
                emulator.resume()
                await read_into(ws, feed, url, limit=500)
                state_after_stale = feed.book_state("BTCUSDT")
                emulator.pause()
                await read_into(ws, feed, url, idle_s=0.3)
                fresh = await binance_depth(http, emulator)
                feed.on_frame(RawFrame(time.time_ns(), fresh, "rest:depth:BTCUSDT"))
                emulator.resume()
                await read_into(ws, feed, url, limit=1000)
        assert orjson.loads(stale)["lastUpdateId"] < orjson.loads(fresh)["lastUpdateId"]
        assert state_after_stale is BookState.SYNCING
        assert feed.book_state("BTCUSDT") is BookState.VALID
        assert feed.stats.gaps == 0
        assert emulator.stats.stale_snapshots == 1

    run(scenario())


# -- REST: rate limits and signatures --------------------------------------------------


@pytest.mark.parametrize("status", [429, 418])
def test_rate_limit_answers_carry_retry_after_and_code_minus_1003(status: int) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator, aiohttp.ClientSession() as http:
            emulator.faults.rate_limit(status, retry_after=7)
            depth_url = f"{emulator.http_url}/api/v3/depth"
            limited = await get_json(http, depth_url, symbol="BTCUSDT")
            served = await get_json(http, depth_url, symbol="BTCUSDT", limit="10")
        code, body, headers = limited
        assert code == status
        assert headers["Retry-After"] == "7"
        assert body["code"] == -1003
        assert ("banned" in body["msg"]) is (status == 418)
        assert served[0] == 200
        assert served[2]["X-MBX-USED-WEIGHT-1M"] == "5"
        assert emulator.stats.rate_limited == 1

    run(scenario())


def test_request_weight_past_the_limit_is_answered_429_with_retry_after() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BINANCE_BTC], weight_limit=12) as emulator,
            aiohttp.ClientSession() as http,
        ):
            if time.time() % 60 > 59:
                await asyncio.sleep(1.1)  # keep the three requests in one weight minute
            depth_url = f"{emulator.http_url}/api/v3/depth"
            answers = [await get_json(http, depth_url, symbol="BTCUSDT") for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 200, 429]
        assert [h["X-MBX-USED-WEIGHT-1M"] for _, _, h in answers] == ["5", "10", "15"]
        assert 1 <= int(answers[2][2]["Retry-After"]) <= 60
        assert answers[2][1]["code"] == -1003
        assert emulator.stats.rate_limited == 1

    run(scenario())


def test_a_wrong_signature_is_rejected_with_minus_1022() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator, aiohttp.ClientSession() as http:
            status, body, _ = await binance_signed(
                http, emulator, "GET", "/api/v3/account", {}, secret="not-the-secret"
            )
            no_key = await binance_signed(http, emulator, "GET", "/api/v3/account", {}, api_key="")
        assert status == 400
        assert body == {"code": -1022, "msg": "Signature for this request is not valid."}
        assert no_key[0] == 401
        assert no_key[1]["code"] == -2014
        assert emulator.stats.signature_rejections == 1

    run(scenario())


def test_a_clock_offset_puts_local_timestamps_outside_the_recv_window() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator, aiohttp.ClientSession() as http:
            emulator.faults.clock_offset_ms(-20_000)  # the venue's clock is 20 s behind ours
            local = await binance_signed(http, emulator, "GET", "/api/v3/account", {})
            _, server_time, _ = await get_json(http, f"{emulator.http_url}/api/v3/time")
            synced = await binance_signed(
                http,
                emulator,
                "GET",
                "/api/v3/account",
                {},
                timestamp_ms=server_time["serverTime"],
            )
        assert local[0] == 400
        assert local[1]["code"] == -1021
        assert "1000ms ahead" in local[1]["msg"]
        assert synced[0] == 200
        assert emulator.stats.timestamp_rejections == 1

    run(scenario())


# -- orders ----------------------------------------------------------------------------


async def _user_messages(ws: websockets.ClientConnection, until: str, limit: int = 20) -> list:
    """Read user-data events until one whose execution type is ``until`` and its balances."""
    messages = []
    seen = False
    for _ in range(limit):
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        messages.append(message)
        if message.get("x") == until:
            seen = True
        elif seen and message["e"] == "outboundAccountPosition":
            break
    return messages


def test_a_signed_order_fills_against_the_replayed_book_and_reaches_the_user_stream() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC]) as emulator, aiohttp.ClientSession() as http:
            _, account_before, _ = await binance_signed(
                http, emulator, "GET", "/api/v3/account", {}
            )
            async with http.post(
                f"{emulator.http_url}/api/v3/userDataStream",
                headers={"X-MBX-APIKEY": "emulator-api-key"},
            ) as response:
                listen_key = (await response.json())["listenKey"]
            url = _stream_url(emulator)
            async with (
                connect(url) as market,
                connect(f"{emulator.ws_url}/ws/{listen_key}") as user,
            ):
                await read_into(market, BinanceFeed(Bus()), url, limit=300)
                emulator.pause()
                book = orjson.loads(await binance_depth(http, emulator, limit=5))
                best_price, best_size = book["asks"][0]
                status, order, headers = await binance_signed(
                    http,
                    emulator,
                    "POST",
                    "/api/v3/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "IOC",
                        "quantity": best_size,
                        "price": best_price,
                        "newClientOrderId": "take-1",
                    },
                )
                events = await _user_messages(user, until="TRADE")
                _, trades, _ = await binance_signed(
                    http, emulator, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}
                )
        assert status == 200, order
        assert headers["X-MBX-ORDER-COUNT-10S"] == "1"
        assert order["status"] == "FILLED"
        assert order["clientOrderId"] == "take-1"
        assert order["executedQty"] == best_size
        assert [(f["price"], f["qty"]) for f in order["fills"]] == [(best_price, best_size)]
        assert Decimal(order["cummulativeQuoteQty"]) == Decimal(best_price) * Decimal(best_size)

        assert [(t["orderId"], t["price"], t["qty"], t["isBuyer"]) for t in trades] == [
            (order["orderId"], best_price, best_size, True)
        ]
        reports = [e for e in events if e["e"] == "executionReport"]
        assert [(r["x"], r["X"]) for r in reports] == [("NEW", "NEW"), ("TRADE", "FILLED")]
        trade = reports[-1]
        assert (trade["c"], trade["i"]) == ("take-1", order["orderId"])
        assert (trade["L"], trade["l"], trade["z"]) == (best_price, best_size, best_size)
        position = events[-1]
        assert position["e"] == "outboundAccountPosition"
        balances = {b["a"]: b for b in position["B"]}
        assert Decimal(balances["BTC"]["f"]) == Decimal(10) + Decimal(best_size)
        assert account_before["balances"]  # the account answered before any order

    run(scenario())


def test_a_resting_order_is_listed_then_canceled_with_a_report() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BINANCE_BTC]) as emulator,
            aiohttp.ClientSession() as http,
            connect(_stream_url(emulator)) as market,
        ):
            await asyncio.wait_for(market.recv(), 5)
            await binance_depth(http, emulator)  # waits for the market to open
            emulator.pause()
            new = {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01000",
                "price": "50000.00",
            }
            placed = await binance_signed(http, emulator, "POST", "/api/v3/order", new)
            listed = await binance_signed(
                http, emulator, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}
            )
            order_id = str(placed[1]["orderId"])
            canceled = await binance_signed(
                http,
                emulator,
                "DELETE",
                "/api/v3/order",
                {"symbol": "BTCUSDT", "orderId": order_id},
            )
            again = await binance_signed(
                http,
                emulator,
                "DELETE",
                "/api/v3/order",
                {"symbol": "BTCUSDT", "orderId": order_id},
            )
            account = await binance_signed(http, emulator, "GET", "/api/v3/account", {})
        assert placed[0] == 200 and placed[1]["status"] == "NEW"
        assert [o["orderId"] for o in listed[1]] == [placed[1]["orderId"]]
        assert listed[1][0]["price"] == "50000.00000000"
        assert canceled[1]["status"] == "CANCELED"
        assert again[1] == {"code": -2011, "msg": "Unknown order sent."}
        usdt = next(b for b in account[1]["balances"] if b["asset"] == "USDT")
        assert (usdt["free"], usdt["locked"]) == ("1000000.00000000", "0.00000000")

    run(scenario())


def test_armed_order_rejects_answer_with_the_scripted_code() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BINANCE_BTC]) as emulator,
            aiohttp.ClientSession() as http,
            connect(_stream_url(emulator)) as market,
        ):
            await asyncio.wait_for(market.recv(), 5)
            await binance_depth(http, emulator)
            emulator.faults.reject_orders(
                -2010, "Account has insufficient balance for requested action."
            )
            new = {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01000",
                "price": "90000.00",
            }
            rejected = await binance_signed(http, emulator, "POST", "/api/v3/order", new)
            accepted = await binance_signed(http, emulator, "POST", "/api/v3/order", new)
        assert rejected[0] == 400
        assert rejected[1]["code"] == -2010
        assert accepted[1]["status"] == "NEW"
        assert emulator.stats.faulted_order_rejects == 1

    run(scenario())


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_full_shared_recording_bridges_with_no_gaps(shared_data) -> None:  # type: ignore[no-untyped-def]
    files = [
        shared_data / "orderbook" / "binance_spot" / "btcusdt_20240808.gz",
        shared_data / "orderbook" / "binance_spot" / "btcusdt_20240809.gz",
    ]

    async def scenario() -> None:
        async with Emulator("binance", files) as emulator:
            url = _stream_url(emulator)
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = await _synced_feed(emulator, http, ws, url)
                emulator.resume()
                await read_into(ws, feed, url, idle_s=2.0)
        assert emulator.market.finished.is_set()
        assert feed.stats.gaps == 0
        assert feed.stats.oracle_mismatches == 0
        assert feed.stats.book_updates > 6000
        assert feed.book_state("BTCUSDT") is BookState.VALID

    run(scenario(), timeout=300)


@pytest.mark.shared_data
@pytest.mark.slow
def test_usdm_futures_snapshot_and_stream_bridge_by_the_futures_rule(shared_data) -> None:  # type: ignore[no-untyped-def]
    files = [shared_data / "orderbook" / "binance_usdm" / "btcusdt_20240808.gz"]

    async def scenario() -> None:
        async with Emulator("binance-usdm", files) as emulator:
            url = _stream_url(emulator, "btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade")
            async with connect(url) as ws, aiohttp.ClientSession() as http:
                feed = BinanceFeed(Bus(), "usdm")
                await read_into(ws, feed, url, limit=3)
                emulator.pause()
                await read_into(ws, feed, url, idle_s=0.3)
                status, snapshot, headers = await get_json(
                    http, f"{emulator.http_url}/fapi/v1/depth", symbol="BTCUSDT", limit="1000"
                )
                feed.on_frame(
                    RawFrame(time.time_ns(), orjson.dumps(snapshot), "rest:depth:BTCUSDT")
                )
                emulator.resume()
                await read_into(ws, feed, url, idle_s=2.0)
                _, info, _ = await get_json(http, f"{emulator.http_url}/fapi/v1/exchangeInfo")
        assert status == 200
        assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert emulator.market.finished.is_set()
        assert feed.stats.gaps == 0
        assert feed.stats.oracle_checks > 100
        assert feed.stats.oracle_mismatches == 0
        assert feed.book_state("BTCUSDT") is BookState.VALID
        btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        assert (btc["pricePrecision"], btc["quantityPrecision"]) == (2, 3)

    run(scenario(), timeout=300)


def test_a_second_pass_restarts_the_market_and_clients_resync_with_no_gaps() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BINANCE_BTC], passes=2) as emulator:
            url = _stream_url(emulator)
            feeds = []
            closes = []
            async with aiohttp.ClientSession() as http:
                for _ in range(2):
                    async with connect(url) as ws:
                        feed = await _synced_feed(emulator, http, ws, url)
                        emulator.resume()
                        await read_into(ws, feed, url, idle_s=2.0)
                        feeds.append(feed)
                        closes.append(ws.close_code)
        assert closes == [1001, None]  # the restart closed the first connection only
        assert emulator.stats.replay_passes == 2
        for feed in feeds:
            assert feed.stats.gaps == 0
            assert feed.stats.oracle_mismatches == 0
            assert feed.stats.book_updates > 500
            assert feed.book_state("BTCUSDT") is BookState.VALID

    run(scenario())
