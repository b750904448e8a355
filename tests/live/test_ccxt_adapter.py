"""ccxt's Binance client pointed at the exchange emulator, under the kernel's checks and audits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from kernel.bus import Bus, topics
from kernel.emulator import Emulator
from kernel.live.ccxt_adapter import (
    CcxtMarketData,
    audit_mismatches,
    create_exchange,
    fixed_from_number,
    instrument_from_market,
)
from tradekernel_sdk.fixedpoint import FixedPointError
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus, Quote, Trade

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
BTC = BUNDLED / "btcusdt_20240808_head12000.gz"
OKX_DATA = BUNDLED.parent / "okx_v5"
OKX = [OKX_DATA / "OKX.0.gz", OKX_DATA / "OKX.ws.1.0.gz"]
TICK_SIZE = 4
SPEED = 5  # about ten seconds of the recording's market time


def binance_on_emulator(emulator: Emulator) -> Any:
    """ccxt's async Binance client with every URL it uses on the emulator, spot markets only."""
    exchange = create_exchange("binance", {"enableRateLimit": False, "timeout": 5000})
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            api[name] = "http://0.0.0.0/unreachable"  # nothing but spot may be called
    api["public"] = f"{emulator.http_url}/api/v3"
    api["private"] = f"{emulator.http_url}/api/v3"
    api["ws"] = {"spot": f"{emulator.ws_url}/ws"}
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchCurrencies"] = False
    exchange.has["fetchCurrencies"] = False
    return exchange


async def okx_on_emulator(emulator: Emulator) -> Any:
    """ccxt's async OKX client on the emulator, spot markets only.

    The emulator serves OKX's instrument lists as recorded, once its market is open.
    """
    emulator.start_replay()
    await until(lambda: "SPOT" in emulator.market.instrument_bodies)  # type: ignore[attr-defined]
    exchange = create_exchange("okx", {"enableRateLimit": False, "timeout": 5000})
    exchange.urls["api"] = {"rest": emulator.http_url, "ws": f"{emulator.ws_url}/ws/v5"}
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.has["fetchCurrencies"] = False
    return exchange


class Watched:
    """An adapter on ccxt-on-emulator, with everything it published."""

    def __init__(self, emulator: Emulator, **options: Any) -> None:
        self.bus = Bus()
        self.exchange = binance_on_emulator(emulator)
        self.data = CcxtMarketData(self.exchange, self.bus, ["BTC/USDT"], **options)
        self.published: dict[type, list[Any]] = {}
        for topic in (
            topics.book("binance", "BTCUSDT"),
            topics.snapshot("binance", "BTCUSDT"),
            topics.book_status("binance", "BTCUSDT"),
            topics.quote("binance", "BTCUSDT"),
            topics.trade("binance", "BTCUSDT"),
        ):
            self.bus.subscribe(topic, self._record)
        self.task: asyncio.Task[None] | None = None

    def _record(self, event: Any) -> None:
        self.published.setdefault(type(event), []).append(event)

    def events(self, kind: type) -> list[Any]:
        return self.published.get(kind, [])

    def state(self) -> BookState:
        return self.data.book_state("BTCUSDT")

    def statuses(self) -> list[BookStatus]:
        return self.events(BookStatus)

    async def __aenter__(self) -> Watched:
        self.task = asyncio.create_task(self.data.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.data.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def until(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 18))


# -- conversion and the audit rule -------------------------------------------------


def test_numbers_convert_exactly_from_strings_and_shortest_float_text() -> None:
    assert fixed_from_number("61837.63", 2) == 6183763
    assert fixed_from_number(61837.63, 2) == 6183763
    assert fixed_from_number(6e-05, 5) == 6
    assert fixed_from_number(6.1e-05, 6) == 61
    assert fixed_from_number(0.1 + 0.2, 17) == 30000000000000004  # no rounding, ever
    with pytest.raises(FixedPointError):
        fixed_from_number(0.1 + 0.2, 2)  # off the price grid: refused
    with pytest.raises(FixedPointError):
        fixed_from_number(None, 2)


def test_an_instrument_takes_its_precisions_from_the_ccxt_market() -> None:
    market = {
        "id": "BTCUSDT",
        "base": "BTC",
        "quote": "USDT",
        "precision": {"price": 0.01, "amount": 1e-05},
    }
    instrument = instrument_from_market("binance", market, TICK_SIZE)
    assert (instrument.symbol, instrument.price_precision, instrument.size_precision) == (
        "BTCUSDT",
        2,
        5,
    )
    assert (instrument.tick, instrument.lot) == (1, 1)
    coarse = {"id": "X", "precision": {"price": 0.5, "amount": 10.0}}
    wide = instrument_from_market("v", coarse, TICK_SIZE)
    assert (wide.price_precision, wide.size_precision, wide.tick, wide.lot) == (1, 0, 5, 10)
    with pytest.raises(ValueError, match="significant"):
        instrument_from_market("v", market, 3)


def test_an_audit_accepts_any_book_held_in_the_window_level_by_level() -> None:
    earlier = ({1000: 5, 990: 1}, {1010: 2, 1020: 7})
    later = ({1000: 4, 990: 1}, {1010: 3, 1020: 7})
    snapshot_bids, snapshot_asks = {1000: 4, 990: 1, 500: 9}, {1010: 2, 1020: 7}
    # Bids as held later, asks as held earlier: each price agrees with one of them.
    assert audit_mismatches(snapshot_bids, snapshot_asks, [earlier, later], depth=2) == []
    # A level the snapshot does not have, inside its range, is a mismatch; so is a size.
    phantom = ({1000: 4, 990: 1, 995: 3}, later[1])
    assert audit_mismatches(snapshot_bids, snapshot_asks, [phantom], depth=2) == [
        "bid 995: snapshot 0, book [3]",
        "ask 1010: snapshot 2, book [3]",
    ]
    # Levels beyond the snapshot's depth are not judged.
    deep = ({1000: 4, 990: 1, 980: 8}, later[1])
    assert audit_mismatches(snapshot_bids, {1010: 3}, [deep], depth=2) == []


# -- against the emulator -----------------------------------------------------------


def test_books_become_valid_and_trades_and_deltas_arrive_as_the_native_feed_publishes() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            await until(lambda: len(watched.events(BookDelta)) > 10)
            await until(lambda: len(watched.events(Trade)) > 3)
            snapshot = watched.events(BookSnapshot)[0]
            assert snapshot.symbol == "BTCUSDT" and snapshot.venue == "binance"
            assert len(snapshot.bids) == len(snapshot.asks) == 50
            assert all(type(price) is int for price, _ in snapshot.bids)
            quote = watched.events(Quote)[-1]
            book = watched.data.book("BTCUSDT")
            assert book is not None
            assert quote.bid_price < quote.ask_price
            trade = watched.events(Trade)[0]
            assert trade.price > 0 and trade.size > 0 and trade.trade_id
            delta = watched.events(BookDelta)[-1]
            assert delta.first_sequence <= delta.sequence
            # The book ends exactly where the emulator's own book is.
            emulator.pause()
            await asyncio.sleep(0.3)
            venue = emulator.market.book("BTCUSDT")  # type: ignore[attr-defined]
            best_bid = venue.bids.best(1)[0]
            assert book.best_bid() == (
                fixed_from_number(best_bid[0], 2),
                fixed_from_number(best_bid[1], 5),
            )
            assert watched.data.stats.malformed_frames == 0
            assert watched.statuses()[0].reason == "synced"

    run(scenario())


def test_a_correct_book_passes_the_audit_against_a_rest_snapshot() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60, audit_window_s=0.3) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            for _ in range(3):
                assert await watched.data.audit("BTCUSDT") is True
            assert watched.data.stats.oracle_checks >= 3
            assert watched.data.stats.oracle_mismatches == 0
            assert watched.state() is BookState.VALID

    run(scenario())


def test_a_corrupted_level_fails_the_audit_and_the_book_is_resynced() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=2) as emulator,
            Watched(emulator, audit_interval_s=60, audit_window_s=0.2) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            # A wrong size ccxt never notices: what a lost update would leave behind.
            emulator.pause()
            cached = watched.exchange.orderbooks["BTC/USDT"]
            price, size = cached["bids"][12][0], cached["bids"][12][1]
            wrong = round(size + 7, 5)
            cached["bids"].store(price, wrong)
            book = watched.data.book("BTCUSDT")
            assert book is not None
            price_fixed, wrong_fixed = fixed_from_number(price, 2), fixed_from_number(wrong, 5)
            emulator.resume()  # the next update carries the wrong size into the kernel
            await until(lambda: book.bids.get(price_fixed) == wrong_fixed)
            emulator.pause()  # the venue's book holds still while it is audited
            await asyncio.sleep(0.5)  # the correct books fall out of the audit window
            assert await watched.data.audit("BTCUSDT") is False
            assert watched.data.counters.audit_rechecks == 1
            assert watched.data.stats.oracle_mismatches == 1
            failed = watched.statuses()[-1]
            assert failed.state is BookState.INVALID
            assert failed.reason.startswith(f"audit failed: bid {price_fixed}: snapshot ")
            emulator.resume()
            await until(lambda: watched.state() is BookState.VALID)
            assert watched.statuses()[-1].reason == "resynced"
            assert watched.data.counters.resubscribes == 1
            assert book.bids.get(price_fixed) != wrong_fixed
            emulator.pause()
            await asyncio.sleep(0.2)
            assert await watched.data.audit("BTCUSDT") is True

    run(scenario())


def test_a_dropped_diff_is_caught_by_ccxt_and_the_book_resyncs() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            emulator.faults.drop_frames(1, after=3, match="@depth")
            await until(lambda: emulator.stats.frames_dropped == 1)
            await until(lambda: watched.data.counters.watch_errors >= 1)
            await until(lambda: watched.state() is BookState.VALID)
            reasons = [s.reason for s in watched.statuses()]
            assert any("InvalidNonce" in reason or "ccxt" in reason for reason in reasons)
            assert reasons[-1] == "resynced"
            assert watched.data.stats.resyncs >= 1

    run(scenario())


def test_a_malformed_frame_and_a_disconnect_end_with_a_valid_book() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60, stale_after_s=1.0) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            emulator.faults.malformed(1, after=2, match="@depth")
            await until(lambda: emulator.stats.frames_malformed == 1)
            connections = emulator.stats.connections
            emulator.faults.disconnect_after(3)
            await until(lambda: emulator.stats.connections > connections)
            await until(lambda: watched.state() is BookState.VALID)
            deltas = len(watched.events(BookDelta))
            await until(lambda: len(watched.events(BookDelta)) > deltas + 5)
            # ccxt 4.5's reader dies on the cut frame without telling anyone; whichever
            # noticed first (ccxt's error or the kernel's stale check), the book recovered.
            noticed = watched.data.counters.watch_errors + watched.data.counters.stale_books
            assert noticed >= 1
            assert watched.data.stats.crossed_books == 0

    run(scenario())


def test_a_book_that_stops_updating_is_invalidated_as_stale_then_resynced() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60, stale_after_s=0.5) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            emulator.pause()
            await until(lambda: watched.data.counters.stale_books >= 1)
            stale = [s for s in watched.statuses() if s.state is BookState.INVALID]
            assert stale[0].reason.startswith("stale: no update for")
            emulator.resume()
            await until(lambda: watched.state() is BookState.VALID)
            deltas = len(watched.events(BookDelta))
            await until(lambda: len(watched.events(BookDelta)) > deltas + 5)

    run(scenario())


def test_a_crossed_book_from_ccxt_is_never_published() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=SPEED) as emulator,
            Watched(emulator, audit_interval_s=60) as watched,
        ):
            await until(lambda: watched.state() is BookState.VALID)
            cached = watched.exchange.orderbooks["BTC/USDT"]
            crossing = round(cached["asks"][0][0] + 1.0, 2)
            cached["bids"].store(crossing, 1.0)
            await until(lambda: watched.data.stats.crossed_books == 1)
            crossed = [s for s in watched.statuses() if s.state is BookState.INVALID]
            assert crossed[0].reason.startswith("crossed: bid ")
            crossing_fixed = fixed_from_number(crossing, 2)
            published = [p for d in watched.events(BookDelta) for p, _ in d.bids]
            assert crossing_fixed not in published
            await until(lambda: watched.state() is BookState.VALID)

    run(scenario())


def test_ccxt_okx_books_match_the_checksum_verified_book_and_pass_the_audit() -> None:
    async def scenario() -> None:
        async with Emulator("okx", OKX, speed=SPEED) as emulator:
            bus = Bus()
            trades: list[Trade] = []
            bus.subscribe(topics.trade("okx", "BTC-USDT"), trades.append)
            exchange = await okx_on_emulator(emulator)
            data = CcxtMarketData(
                exchange, bus, ["BTC/USDT"], audit_interval_s=60, audit_window_s=0.2
            )
            task = asyncio.create_task(data.run())
            try:
                await until(lambda: data.book_state("BTC-USDT") is BookState.VALID)
                await until(lambda: data.stats.book_updates > 5 and len(trades) > 0)
                emulator.pause()
                await asyncio.sleep(0.4)
                assert data.book_state("BTC-USDT") is BookState.VALID
                book = data.book("BTC-USDT")
                venue = emulator.market.live_book("BTC-USDT")
                assert book is not None and venue is not None
                assert book.bid_levels() == venue.bid_levels(50)
                assert book.ask_levels() == venue.ask_levels(50)
                assert await data.audit("BTC-USDT") is True
                instrument = data.instrument("BTC-USDT")
                assert instrument is not None and instrument.price_precision == 1
            finally:
                data.stop()
                await asyncio.wait_for(task, 5)

    run(scenario())
