"""The service with a [[live]] venue: the emulator's stream through books, strategies and paper."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path

from kernel.emulator import Emulator
from kernel.live.component import LiveMarketDataComponent
from kernel.service.builder import build
from kernel.service.config import parse_config
from kernel.service.runner import format_summary, summary
from tradekernel_sdk.types import BookState

BTC = (
    Path(__file__).resolve().parents[2]
    / "kernel"
    / "data"
    / "binance_spot"
    / "btcusdt_20240808_head12000.gz"
)

DEMO = tomllib.loads(
    (Path(__file__).resolve().parents[2] / "kernel" / "data" / "default.toml").read_text()
)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_a_live_venue_feeds_the_strategies_and_the_paper_venue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=20) as emulator:
            config = parse_config(
                {
                    "kernel": {"state_dir": str(tmp_path / "state")},
                    "metrics": {"enabled": False},
                    "live": [
                        {
                            "venue": "binance",
                            "symbols": ["BTCUSDT"],
                            "ws_url": emulator.ws_url,
                            "rest_url": emulator.http_url,
                        }
                    ],
                    # The demo's market maker, with the demo's settings.
                    "strategies": {"maker": DEMO["strategies"]["market_maker_btc"]},
                }
            )
            app = build(config, progress=False)
            live = [c for c in app.lifecycle.components if isinstance(c, LiveMarketDataComponent)]
            assert [c.name for c in live] == ["live:binance"]
            feed = app.feeds["binance"]
            await app.lifecycle.start()
            try:
                await until(lambda: feed.book_state("BTCUSDT") is BookState.VALID)
                paper = app.paper
                assert paper is not None
                await until(lambda: paper.venue is not None and paper.venue.orders > 0)
            finally:
                await app.lifecycle.stop()
            assert not app.lifecycle.stop_errors
            stats = live[0].session_stats
            assert stats is not None and stats.connects == 1
            assert feed.stats.gaps == 0
            report = summary(app)
            assert report["live"]["binance"]["connects"] == 1
            assert "live binance" in format_summary(report)

    asyncio.run(asyncio.wait_for(scenario(), 60))
