"""The service with a [[live]] venue: the emulator's stream through books, strategies and paper."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel.api import ApiServer
from kernel.emulator import Emulator
from kernel.live.component import LiveMarketDataComponent
from kernel.service.builder import build
from kernel.service.config import ConfigError, parse_config
from kernel.service.runner import format_summary, summary
from tradekernel_sdk.client import AsyncKernelClient, ComponentInfo
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


def test_a_ccxt_venue_from_live_config_keeps_verified_books(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Emulator("binance", [BTC], speed=5) as emulator:
            unreachable = "http://0.0.0.0/unreachable"  # only the spot API may be called
            api = {name: unreachable for name in ("sapi", "fapiPublic", "dapiPublic")}
            api |= {
                "public": f"{emulator.http_url}/api/v3",
                "private": f"{emulator.http_url}/api/v3",
                "ws": {"spot": f"{emulator.ws_url}/ws"},
            }
            config = parse_config(
                {
                    "kernel": {"state_dir": str(tmp_path / "state")},
                    "metrics": {"enabled": False},
                    "live": [
                        {
                            "venue": "ccxt:binance",
                            "symbols": ["BTC/USDT"],
                            "ccxt": {
                                "urls": {"api": api},
                                "options": {
                                    "fetchMarkets": {"types": ["spot"]},
                                    "fetchCurrencies": False,
                                },
                                "has": {"fetchCurrencies": False},
                                "enableRateLimit": False,
                            },
                        }
                    ],
                }
            )
            app = build(config, progress=False)
            feed = app.feeds["binance"]
            await app.lifecycle.start()
            try:
                await until(lambda: feed.book_state("BTCUSDT") is BookState.VALID)
                book = feed.book("BTCUSDT")
                assert book is not None
                bid, ask = book.best_bid_price(), book.best_ask_price()
                assert bid is not None and ask is not None and bid < ask
            finally:
                await app.lifecycle.stop()
            assert not app.lifecycle.stop_errors

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_an_unknown_ccxt_exchange_is_named() -> None:
    with pytest.raises(ConfigError, match=r"live\[0\].venue: ccxt has no websocket client 'nyse'"):
        parse_config({"live": [{"venue": "ccxt:nyse", "symbols": ["X/Y"]}]})


def test_status_over_the_api_shows_a_live_venue_connected_then_reconnecting(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        emulator = Emulator("binance", [BTC], speed=5)
        await emulator.start()
        config = parse_config(
            {
                "kernel": {"state_dir": str(tmp_path / "state")},
                "metrics": {"enabled": False},
                "api": {"enabled": True, "port": 0, "tokens": {"reader-token-1": ["read"]}},
                "live": [
                    {
                        "venue": "binance",
                        "symbols": ["BTCUSDT"],
                        "ws_url": emulator.ws_url,
                        "rest_url": emulator.http_url,
                    }
                ],
            }
        )
        app = build(config, progress=False)
        feed = app.feeds["binance"]
        await app.lifecycle.start()
        api = next(c for c in app.lifecycle.components if isinstance(c, ApiServer))
        try:
            async with AsyncKernelClient(f"127.0.0.1:{api.port}", "reader-token-1") as client:
                await until(lambda: feed.book_state("BTCUSDT") is BookState.VALID)
                live = await live_status(client)
                assert (live.state, live.detail) == ("running", "")
                await emulator.stop()  # the venue goes away
                await until(lambda: feed.book_state("BTCUSDT") is BookState.INVALID)
                live = await live_status(client)
                assert live.state == "starting"
                assert live.detail.startswith("not connected")
        finally:
            await app.lifecycle.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


async def live_status(client: AsyncKernelClient) -> ComponentInfo:
    status = await client.status()
    return next(c for c in status.components if c.name == "live:binance")
