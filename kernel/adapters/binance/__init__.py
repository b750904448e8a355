"""Binance spot, USD-M and COIN-M futures market data."""

from kernel.adapters.binance.feed import VENUE_NAMES, BinanceFeed, Market
from kernel.adapters.binance.instruments import (
    KNOWN_INSTRUMENTS,
    instrument_from_strings,
    instruments_from_exchange_info,
)

__all__ = [
    "KNOWN_INSTRUMENTS",
    "VENUE_NAMES",
    "BinanceFeed",
    "Market",
    "instrument_from_strings",
    "instruments_from_exchange_info",
]
