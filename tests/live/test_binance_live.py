"""Live Binance market data against the exchange emulator: sync, faults, and recovery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from kernel.adapters.binance.feed import BinanceFeed
from kernel.bus import Bus, topics
from kernel.emulator import Emulator
from kernel.live import Backoff, WebSocketSession
from kernel.live.binance import ENDPOINTS, BinanceMarketData, depth_weight
from tradekernel_sdk.types import BookState, BookStatus

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
BTC = BUNDLED / "btcusdt_20240808_head12000.gz"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.02, cap_s=0.1, rng=random.Random(0))


class Live:
    """A feed, its live connection to an emulator, and the book states it announced."""

    def __init__(self, emulator: Emulator, **options: object) -> None:
        self.bus = Bus()
        self.feed = BinanceFeed(self.bus, "spot")
        self.statuses: list[BookStatus] = []
        self.bus.subscribe(topics.book_status("binance", "BTCUSDT"), self.statuses.append)
        self.data = BinanceMarketData(
            self.feed,
            ["BTCUSDT"],
            ws_url=emulator.ws_url,
            rest_url=emulator.http_url,
            backoff=fast_backoff(),
            **options,  # type: ignore[arg-type]
        )
        self.task: asyncio.Task[None] | None = None

    def state(self) -> BookState:
        return self.feed.book_state("BTCUSDT")

    async def __aenter__(self) -> Live:
        self.task = asyncio.create_task(self.data.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.data.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def drop_and_reconnect(live: Live, emulator: Emulator) -> None:
    connects = live.data.session.stats.connects
    emulator.faults.disconnect_after(2)
    await until(lambda: live.data.session.stats.connects > connects)


def run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))  # type: ignore[arg-type]


def test_depth_weights_follow_the_documented_tables() -> None:
    spot, usdm = ENDPOINTS["spot"], ENDPOINTS["usdm"]
    limits = (5, 100, 101, 500, 1000, 5000)
    assert [depth_weight(spot, n) for n in limits] == [5, 5, 25, 25, 50, 250]
    assert [depth_weight(usdm, n) for n in (20, 50, 100, 500, 1000)] == [2, 2, 5, 10, 20]


def test_the_book_syncs_from_stream_and_snapshot_and_stays_valid() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=20) as emulator, Live(emulator) as live:
            await until(lambda: live.state() is BookState.VALID)
            updates = live.feed.stats.book_updates
            await until(lambda: live.feed.stats.book_updates > updates + 20)
            assert live.state() is BookState.VALID
            assert live.feed.stats.gaps == 0
            assert live.feed.stats.oracle_mismatches == 0
            assert live.data.snapshots_fetched == 1
            assert live.data.limiter.used() >= depth_weight(ENDPOINTS["spot"], 1000)

    run(scenario())


def test_a_dropped_connection_invalidates_at_once_then_resyncs() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=20) as emulator, Live(emulator) as live:
            await until(lambda: live.state() is BookState.VALID)
            emulator.faults.disconnect_after(5)
            await until(lambda: live.state() is not BookState.VALID)
            lost = live.statuses[-1]
            assert lost.state is BookState.INVALID
            assert "connection lost" in lost.reason
            await until(lambda: live.state() is BookState.VALID)
            assert live.data.session.stats.connects == 2
            assert live.data.snapshots_fetched == 2
            assert live.feed.stats.resyncs == 1

    run(scenario())


def test_a_gap_in_the_diffs_is_repaired_with_a_new_snapshot() -> None:
    async def scenario() -> None:
        async with (
            Emulator("binance", [BTC], speed=20) as emulator,
            Live(emulator, resync_after_s=0.2) as live,
        ):
            await until(lambda: live.state() is BookState.VALID)
            emulator.faults.drop_frames(1, after=3, match="@depth")
            await until(lambda: live.feed.stats.gaps == 1)
            await until(lambda: live.state() is BookState.VALID)
            assert live.data.snapshots_fetched == 2
            assert live.data.session.stats.connects == 1  # no reconnect needed

    run(scenario())


def test_a_stale_snapshot_is_fetched_again_until_one_bridges() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=20) as emulator:
            emulator.faults.stale_snapshot()
            async with Live(emulator, resync_after_s=0.2) as live:
                await until(lambda: live.state() is BookState.VALID)
                assert live.data.snapshots_fetched == 2
                assert emulator.stats.as_dict()["stale_snapshots"] == 1

    run(scenario())


def test_a_rate_limited_snapshot_waits_for_retry_after() -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=20) as emulator:
            emulator.faults.rate_limit(429, retry_after=1, match="/depth")
            async with Live(emulator, resync_after_s=0.1) as live:
                await until(lambda: live.data.snapshot_failures == 1)
                assert live.data.limiter.delay_for(1) > 0.5  # blocked by Retry-After
                await until(lambda: live.state() is BookState.VALID)
                assert live.data.snapshots_fetched == 1

    run(scenario())


def test_a_reconnect_storm_ends_with_a_valid_book_and_no_leaked_tasks() -> None:
    async def scenario() -> None:
        tasks_before = len(asyncio.all_tasks())
        async with Emulator("binance", [BTC], speed=20) as emulator, Live(emulator) as live:
            await until(lambda: live.state() is BookState.VALID)
            for _ in range(10):
                await drop_and_reconnect(live, emulator)
            await until(lambda: live.state() is BookState.VALID)
            assert live.data.session.stats.connects == 11
            assert isinstance(live.data.session, WebSocketSession)
        assert len(asyncio.all_tasks()) == tasks_before

    run(scenario())
