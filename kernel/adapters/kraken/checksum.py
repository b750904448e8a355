"""The Kraken spot websocket book checksum (WebSocket v1 and v2).

Rules, from Kraken's guides "Spot Websockets (v1) Book Checksum"
(https://docs.kraken.com/api/docs/guides/spot-ws-book-v1) and "(v2) Book
Checksum" (https://docs.kraken.com/api/docs/guides/spot-ws-book-v2):

* after applying every level of a message, take the best 10 asks (price low to
  high), then the best 10 bids (price high to low);
* for each level, take the price and the volume (v1) or qty (v2) as the venue
  sent them, remove the ``.`` and then the leading zeros (``"0.05000"`` →
  ``"5000"``, ``"0.00000500"`` → ``"500"``), and append price then volume;
* CRC32 the concatenation of the asks string and the bids string; the venue
  sends it as an unsigned 32-bit integer (a decimal string in v1's ``"c"``, a
  JSON integer in v2's ``checksum``).

The inputs differ between the versions: v1 sends prices and volumes as JSON
strings, v2 sends them as JSON *numbers* written at the pair's full precision
(``0.10000000``). The v2 token must come from that number's text as received,
so v2 frames are parsed keeping number literals as text; a float would lose the
trailing zeros the checksum counts. The docs' worked examples (v1: 974947235,
v2: 3310070434) are in the tests.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

__all__ = ["CHECKSUM_DEPTH", "checksum_of_tokens", "kraken_checksum", "level_token"]

CHECKSUM_DEPTH = 10
"""Levels per side the checksum covers, whatever the subscribed depth."""


def level_token(price: str, volume: str) -> str:
    """Return one level's checksum input: both strings without ``.`` and leading zeros."""
    return price.replace(".", "").lstrip("0") + volume.replace(".", "").lstrip("0")


def checksum_of_tokens(ask_tokens: Iterable[str], bid_tokens: Iterable[str]) -> int:
    """Return the CRC32 of level tokens already in checksum order (asks, then bids)."""
    crc = zlib.crc32("".join(ask_tokens).encode())
    return zlib.crc32("".join(bid_tokens).encode(), crc)


def kraken_checksum(asks: Sequence[Sequence[str]], bids: Sequence[Sequence[str]]) -> int:
    """Return the checksum of ``[price, volume, ...]`` levels given best first, as received."""
    return checksum_of_tokens(
        (level_token(level[0], level[1]) for level in asks[:CHECKSUM_DEPTH]),
        (level_token(level[0], level[1]) for level in bids[:CHECKSUM_DEPTH]),
    )
