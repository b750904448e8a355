"""The Bybit v5 public market-data feed (spot, linear, inverse and option streams)."""

from kernel.adapters.bybit.feed import MARKETS, BybitFeed, market_of

__all__ = ["MARKETS", "BybitFeed", "market_of"]
