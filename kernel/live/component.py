"""The live market-data part of the service: one connection runner per ``[[live]]`` table.

A runner owns a venue connection (``kernel.live.binance``, ``kernel.live.okx``,
...) and feeds the same verified feed a replay would; the rest of the kernel
(books, strategies, risk, the paper venue) cannot tell live from replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from kernel.adapters.base import Feed
from kernel.live.session import SessionStats

__all__ = ["LIVE_VENUES", "LiveMarketDataComponent", "LiveRunner", "create_runner"]

log = logging.getLogger(__name__)


class LiveRunner(Protocol):
    """What every venue's live market-data class offers."""

    async def run(self) -> None:
        """Stay connected until :meth:`stop`."""

    def stop(self) -> None:
        """Close the connection and end :meth:`run`."""


def _binance(feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    from kernel.adapters.binance import BinanceFeed  # noqa: PLC0415
    from kernel.live.binance import BinanceMarketData  # noqa: PLC0415

    if not isinstance(feed, BinanceFeed):
        raise TypeError(f"a Binance connection needs a Binance feed, got {type(feed).__name__}")
    return BinanceMarketData(
        feed, symbols, ws_url=urls.get("ws_url"), rest_url=urls.get("rest_url")
    )


def _okx(feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    from kernel.adapters.okx import OkxFeed  # noqa: PLC0415
    from kernel.live.okx import PUBLIC_URL, OkxMarketData  # noqa: PLC0415

    if not isinstance(feed, OkxFeed):
        raise TypeError(f"an OKX connection needs an OKX feed, got {type(feed).__name__}")
    return OkxMarketData(feed, symbols, url=urls.get("ws_url") or PUBLIC_URL)


def _kraken(feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    from kernel.adapters.kraken import KrakenFeed  # noqa: PLC0415
    from kernel.live.kraken import KrakenMarketData  # noqa: PLC0415

    if not isinstance(feed, KrakenFeed):
        raise TypeError(f"a Kraken connection needs a Kraken feed, got {type(feed).__name__}")
    return KrakenMarketData(feed, symbols, url=urls.get("ws_url") or None)


def _coinbase(feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    from kernel.adapters.coinbase import CoinbaseFeed  # noqa: PLC0415
    from kernel.live.coinbase import MARKET_DATA_URL, CoinbaseMarketData  # noqa: PLC0415

    if not isinstance(feed, CoinbaseFeed):
        raise TypeError(f"a Coinbase connection needs a Coinbase feed, got {type(feed).__name__}")
    return CoinbaseMarketData(feed, symbols, url=urls.get("ws_url") or MARKET_DATA_URL)


class _Together:
    """Several connections run as one (Bybit: one connection per market)."""

    def __init__(self, runners: list[LiveRunner]) -> None:
        self.runners = runners

    async def run(self) -> None:
        await asyncio.gather(*(runner.run() for runner in self.runners))

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()


def _bybit(feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    """Symbols name their market, ``linear:BTCUSDT``; a bare symbol is spot."""
    from kernel.adapters.bybit import BybitFeed  # noqa: PLC0415
    from kernel.live.bybit import PUBLIC_URLS, BybitMarketData  # noqa: PLC0415

    if not isinstance(feed, BybitFeed):
        raise TypeError(f"a Bybit connection needs a Bybit feed, got {type(feed).__name__}")
    by_market: dict[str, list[str]] = {}
    for symbol in symbols:
        market, _, name = symbol.rpartition(":")
        by_market.setdefault(market or "spot", []).append(name)
    unknown = sorted(set(by_market) - set(PUBLIC_URLS))
    if unknown:
        raise ValueError(f"unknown Bybit market(s) {unknown}; expected {sorted(PUBLIC_URLS)}")
    if urls.get("ws_url") and len(by_market) > 1:
        raise ValueError("one ws_url serves one Bybit market; configure one [[live]] per market")
    return _Together(
        [
            BybitMarketData(feed, names, market=market, url=urls.get("ws_url") or None)  # type: ignore[arg-type]
            for market, names in by_market.items()
        ]
    )


# venue -> how to connect its feed.
LIVE_VENUES: dict[str, Callable[[Feed, list[str], dict[str, str]], LiveRunner]] = {
    "binance": _binance,
    "binance-usdm": _binance,
    "binance-coinm": _binance,
    "okx": _okx,
    "kraken": _kraken,
    "bybit": _bybit,
    "coinbase": _coinbase,
}


def create_runner(venue: str, feed: Feed, symbols: list[str], urls: dict[str, str]) -> LiveRunner:
    """Build ``venue``'s live connection into ``feed``."""
    factory = LIVE_VENUES.get(venue)
    if factory is None:
        raise ValueError(
            f"no live connection for venue {venue!r}; live venues: {', '.join(LIVE_VENUES)}"
        )
    return factory(feed, symbols, urls)


class LiveMarketDataComponent:
    """Run one venue's live connection for the life of the service."""

    def __init__(self, venue: str, runner: LiveRunner) -> None:
        self.name = f"live:{venue}"
        self.venue = venue
        self.runner = runner
        self._task: asyncio.Task[None] | None = None

    @property
    def session_stats(self) -> SessionStats | None:
        """Return the connection's counters, when the runner has a session."""
        session: Any = getattr(self.runner, "session", None)
        stats = getattr(session, "stats", None)
        return stats if isinstance(stats, SessionStats) else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.runner.run(), name=self.name)

    async def stop(self) -> None:
        self.runner.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                log.warning("%s did not stop in 10 s; cancelling it", self.name)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
