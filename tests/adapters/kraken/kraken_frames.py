"""Kraken frames for the tests: the documentation's examples, a reference book, frame builders.

The reference book is deliberately naive — Decimal keys, a full sort on every
checksum — so that it shares nothing with the feed it checks.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

import orjson

from kernel.adapters.base import RawFrame

V1_URL = "wss://ws.kraken.com"
V2_URL = "wss://ws.kraken.com/v2"

# Kraken "Spot Websockets (v1) Book Checksum",
# https://docs.kraken.com/api/docs/guides/spot-ws-book-v1 : the book state the
# example checksum 974947235 is computed from (all volumes 0.00000500) ...
DOC_V1_ASKS = [
    "0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
    "0.05030", "0.05035", "0.05040", "0.05045", "0.05050",
]  # fmt: skip
DOC_V1_BIDS = [
    "0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
    "0.04970", "0.04965", "0.04960", "0.04955", "0.04950",
]  # fmt: skip
DOC_V1_VOLUME = "0.00000500"
DOC_V1_CHECKSUM = 974947235
# ... and the page's example update message, verbatim apart from whitespace: its
# levels lie outside the best 10, so the checksum it carries is the same.
DOC_V1_UPDATE = (
    b'[0,{"a":[["0.05120","0.00000500","1582905486.493008"],'
    b'["0.05275","0.00000500","1582905486.493034"]]},'
    b'{"b":[["0.04765","0.00000500","1582905486.493008"],'
    b'["0.04940","0.00000500","1582905486.493034"]],"c":"974947235"},'
    b'"book-1000","BTC/USD"]'
)

# Kraken "Spot Websockets (v2) Book Checksum",
# https://docs.kraken.com/api/docs/guides/spot-ws-book-v2 : the example snapshot
# (BTC/USD, 10 levels a side) and its checksum 3310070434.
DOC_V2_BIDS = [
    ("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"),
    ("45281.0", "0.10000000"), ("45280.3", "1.54592586"), ("45279.0", "0.07990000"),
    ("45277.6", "0.03310103"), ("45277.5", "0.30000000"), ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
]  # fmt: skip
DOC_V2_ASKS = [
    ("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"), ("45290.2", "0.15890660"), ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"), ("45296.1", "0.35380000"), ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
]  # fmt: skip
DOC_V2_CHECKSUM = 3310070434


class ReferenceBook:
    """A Kraken book kept the obvious way: levels by Decimal price, as received strings."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def set(self, side: str, price: str, qty: str) -> None:
        levels = self.bids if side == "bid" else self.asks
        if Decimal(qty) == 0:
            levels.pop(Decimal(price), None)
        else:
            levels[Decimal(price)] = (price, qty)

    def truncate(self) -> None:
        for levels, best_first in ((self.bids, True), (self.asks, False)):
            keep = sorted(levels, reverse=best_first)[: self.depth]
            for price in set(levels) - set(keep):
                del levels[price]

    def best(self, side: str) -> list[tuple[str, str]]:
        levels = self.bids if side == "bid" else self.asks
        return [levels[p] for p in sorted(levels, reverse=side == "bid")]

    def checksum(self) -> int:
        text = ""
        for price, qty in self.best("ask")[:10] + self.best("bid")[:10]:
            text += price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
        return zlib.crc32(text.encode())


# -- v1 frames (JSON arrays, strings) --------------------------------------------


def v1_snapshot(
    pair: str, asks: list[tuple[str, str]], bids: list[tuple[str, str]], depth: int = 10
) -> bytes:
    stamp = "1700000000.000001"
    return orjson.dumps(
        [
            42,
            {"as": [[p, q, stamp] for p, q in asks], "bs": [[p, q, stamp] for p, q in bids]},
            f"book-{depth}",
            pair,
        ]
    )


def v1_update(
    pair: str,
    asks: list[tuple[str, str]],
    bids: list[tuple[str, str]],
    checksum: int | None,
    depth: int = 10,
    *,
    republish: bool = False,
) -> bytes:
    stamp = "1700000001.000002"
    extra = ["r"] if republish else []
    parts: list[Any] = []
    if asks:
        parts.append({"a": [[p, q, stamp, *extra] for p, q in asks]})
    if bids:
        parts.append({"b": [[p, q, stamp, *extra] for p, q in bids]})
    if not parts:
        parts.append({})
    if checksum is not None:
        parts[-1]["c"] = str(checksum)
    return orjson.dumps([42, *parts, f"book-{depth}", pair])


# -- v2 frames (JSON objects, prices and quantities as number literals) -------------


def _levels_v2(levels: list[tuple[str, str]]) -> str:
    return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)


def v2_book(
    kind: str,
    symbol: str,
    asks: list[tuple[str, str]],
    bids: list[tuple[str, str]],
    checksum: int,
) -> bytes:
    """A v2 book message written as Kraken writes it: numbers at full precision."""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
        f'"bids":[{_levels_v2(bids)}],"asks":[{_levels_v2(asks)}],'
        f'"checksum":{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
    ).encode()


def v2_subscribed(symbol: str, depth: int) -> bytes:
    return orjson.dumps(
        {
            "method": "subscribe",
            "result": {"channel": "book", "depth": depth, "snapshot": True, "symbol": symbol},
            "success": True,
            "time_in": "2023-10-06T17:35:55.000000Z",
            "time_out": "2023-10-06T17:35:55.000100Z",
        }
    )


def frames(payloads: list[bytes], source: str) -> list[RawFrame]:
    return [RawFrame(1_700_000_000_000_000_000 + i, p, source) for i, p in enumerate(payloads)]
