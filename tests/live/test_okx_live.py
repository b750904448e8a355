"""Live OKX market data against the exchange emulator: snapshot on subscribe, faults, recovery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from kernel.adapters.okx.feed import OkxFeed
from kernel.bus import Bus, topics
from kernel.emulator import Emulator
from kernel.live import Backoff
from kernel.live.okx import OkxMarketData
from tradekernel_sdk.types import BookState, BookStatus

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "okx_v5"
RECORDING = [BUNDLED / "OKX.0.gz", BUNDLED / "OKX.ws.1.0.gz"]
BTC = "BTC-USDT"


class Live:
    """A feed, its live connection to an emulator, and the book states it announced."""

    def __init__(self, emulator: Emulator, **options: object) -> None:
        self.bus = Bus()
        self.feed = OkxFeed(self.bus)
        self.statuses: list[BookStatus] = []
        self.bus.subscribe(topics.book_status("okx", BTC), self.statuses.append)
        self.data = OkxMarketData(
            self.feed,
            [BTC],
            url=f"{emulator.ws_url}/ws/v5/public",
            backoff=Backoff(base_s=0.02, cap_s=0.1, rng=random.Random(0)),
            **options,  # type: ignore[arg-type]
        )
        self.task: asyncio.Task[None] | None = None

    def state(self) -> BookState:
        return self.feed.book_state(BTC)

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


def run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))  # type: ignore[arg-type]


def test_the_snapshot_sent_on_subscribe_makes_the_book_valid() -> None:
    async def scenario() -> None:
        async with Emulator("okx", RECORDING, speed=5) as emulator, Live(emulator) as live:
            await until(lambda: live.state() is BookState.VALID)
            checks = live.feed.stats.checksum_checks
            await until(lambda: live.feed.stats.checksum_checks > checks + 5)
            assert live.feed.stats.checksum_failures == 0
            assert live.feed.stats.gaps == 0

    run(scenario())


def test_a_dropped_connection_invalidates_at_once_and_resubscribes() -> None:
    async def scenario() -> None:
        async with Emulator("okx", RECORDING, speed=5) as emulator, Live(emulator) as live:
            await until(lambda: live.state() is BookState.VALID)
            emulator.faults.disconnect_after(2)
            await until(lambda: live.state() is not BookState.VALID)
            assert "connection lost" in live.statuses[-1].reason
            await until(lambda: live.state() is BookState.VALID)
            assert live.data.session.stats.connects == 2
            assert live.data.session.stats.subscribe_messages == 2

    run(scenario())


def test_a_lost_update_is_repaired_by_resubscribing_that_book() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", RECORDING, speed=5) as emulator,
            Live(emulator, resync_after_s=0.2) as live,
        ):
            await until(lambda: live.state() is BookState.VALID)
            emulator.faults.drop_frames(1, after=1, match="books:BTC-USDT")
            await until(lambda: live.state() is not BookState.VALID)
            await until(lambda: live.state() is BookState.VALID)
            assert live.data.resubscribes == 1
            assert live.data.session.stats.connects == 1

    run(scenario())


def test_silence_earns_a_text_ping_and_the_pong_never_reaches_the_feed() -> None:
    async def scenario() -> None:
        async with (
            Emulator("okx", RECORDING, speed=5) as emulator,
            Live(emulator, ping_after_s=0.2) as live,
        ):
            await until(lambda: live.state() is BookState.VALID)
            emulator.pause()
            malformed = live.feed.stats.malformed_frames
            await until(lambda: live.data.session.stats.app_pings >= 2)
            assert live.feed.stats.malformed_frames == malformed
            assert live.data.session.stats.connects == 1  # pongs keep it alive
            emulator.resume()

    run(scenario())
