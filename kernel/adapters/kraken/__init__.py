"""The Kraken spot venue, WebSocket v1 and v2: the book checksum and the market-data feed."""

from kernel.adapters.kraken.checksum import kraken_checksum, level_token
from kernel.adapters.kraken.feed import DEFAULT_DEPTH, KrakenFeed

__all__ = ["DEFAULT_DEPTH", "KrakenFeed", "kraken_checksum", "level_token"]
