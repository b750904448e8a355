"""tradekernel: the trading kernel service."""

__version__ = "0.1.0"
