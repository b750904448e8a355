"""The OKX v5 venue: instrument metadata, the book checksum and the market-data feed."""

from kernel.adapters.okx.checksum import okx_checksum
from kernel.adapters.okx.feed import OkxFeed
from kernel.adapters.okx.instruments import load_okx_instruments, parse_okx_instruments

__all__ = ["OkxFeed", "load_okx_instruments", "okx_checksum", "parse_okx_instruments"]
