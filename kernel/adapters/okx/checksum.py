"""The OKX v5 order-book checksum.

Rule, from the OKX v5 API docs (order book channel, "Checksum"),
https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel :
take the best 25 levels of each side, alternate them as
``bid_px:bid_sz:ask_px:ask_sz`` level by level (once one side runs out, only the
other contributes), join everything with ``:`` and CRC32 the result; the venue
sends it as a signed 32-bit integer. Prices and sizes are the strings exactly as
received ("30316" stays "30316", never "30316.0"). The docs' worked examples
(two levels a side: -1881014294; one bid, three asks: 831078360) are in the tests.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["CHECKSUM_DEPTH", "checksum_of_pairs", "okx_checksum", "signed_crc32"]

CHECKSUM_DEPTH = 25
"""Levels per side the checksum covers."""


def signed_crc32(text: str) -> int:
    """Return the CRC32 of ``text`` (UTF-8) as a signed 32-bit integer."""
    crc = zlib.crc32(text.encode())
    return crc - 0x1_0000_0000 if crc & 0x8000_0000 else crc


def checksum_of_pairs(bid_pairs: Sequence[str], ask_pairs: Sequence[str]) -> int:
    """Return the checksum of levels already joined as ``"px:sz"``, best first.

    Only the first :data:`CHECKSUM_DEPTH` of each side count.
    """
    bids = list(bid_pairs[:CHECKSUM_DEPTH])
    asks = list(ask_pairs[:CHECKSUM_DEPTH])
    common = min(len(bids), len(asks))
    parts = [""] * (2 * common)
    parts[0::2] = bids[:common]
    parts[1::2] = asks[:common]
    parts += bids[common:]
    parts += asks[common:]
    return signed_crc32(":".join(parts))


def okx_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """Return the checksum of best-first levels given as received, ``[px, sz, ...]``."""
    return checksum_of_pairs(
        [f"{level[0]}:{level[1]}" for level in bids[:CHECKSUM_DEPTH]],
        [f"{level[0]}:{level[1]}" for level in asks[:CHECKSUM_DEPTH]],
    )
