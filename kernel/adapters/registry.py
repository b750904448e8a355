"""Venue names the kernel knows, and how to build each one's feed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernel.adapters.base import Feed
from kernel.adapters.binance import BinanceFeed, Market
from kernel.adapters.bybit import BybitFeed
from kernel.adapters.coinbase import CoinbaseFeed
from kernel.adapters.kraken import KrakenFeed
from kernel.adapters.okx import OkxFeed
from kernel.bus import Bus
from kernel.metrics import StageLatency, TickToOrder
from tradekernel_sdk.types import Instrument

__all__ = ["REPLAY_VENUES", "create_feed"]

REPLAY_VENUES = (
    "binance",
    "binance-usdm",
    "binance-coinm",
    "okx",
    "kraken",
    "bybit",
    "coinbase",
)

_BINANCE_MARKETS: dict[str, Market] = {
    "binance": "spot",
    "binance-usdm": "usdm",
    "binance-coinm": "coinm",
}


def create_feed(
    venue: str,
    bus: Bus,
    *,
    instruments: Mapping[str, Instrument] | None = None,
    verify: bool = True,
    latency: StageLatency | None = None,
    probe: TickToOrder | None = None,
) -> Feed:
    """Build the market-data feed of ``venue``."""
    feed: Any
    if venue in _BINANCE_MARKETS:
        market = _BINANCE_MARKETS[venue]
        feed = BinanceFeed(
            bus, market, instruments=instruments, verify=verify, latency=latency, probe=probe
        )
    elif venue == "okx":
        feed = OkxFeed(bus, instruments=instruments, latency=latency, probe=probe)
    elif venue == "kraken":
        feed = KrakenFeed(bus, instruments, latency=latency, probe=probe)
    elif venue == "bybit":
        feed = BybitFeed(bus, instruments, latency=latency, probe=probe)
    elif venue == "coinbase":
        feed = CoinbaseFeed(bus, instruments, latency=latency, probe=probe)
    else:
        raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(REPLAY_VENUES)}")
    return feed  # type: ignore[no-any-return]
