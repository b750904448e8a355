"""The Coinbase Advanced Trade market-data feed (level2, market_trades, ticker, heartbeats)."""

from kernel.adapters.coinbase.feed import MIN_SIZE_PRECISION, CoinbaseFeed

__all__ = ["MIN_SIZE_PRECISION", "CoinbaseFeed"]
