"""The recorded Binance depth streams, reduced to the diffs a synced book applies.

Each stream is one market and symbol (spot files of both days concatenated).
Which diffs get applied follows Binance's documented procedure, the same rules
the kernel's feed enforces; :func:`check_against_feed` runs the real
:class:`~kernel.adapters.binance.BinanceFeed` over the same frames and confirms
it applied the same number of level updates, so every contender in ``book``
gets exactly the set of level updates the kernel's pipeline applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import Context, load_frames
from kernel.adapters.binance import KNOWN_INSTRUMENTS, VENUE_NAMES, BinanceFeed
from kernel.book import L2Book
from kernel.bus import Bus
from tradekernel_sdk.types import Instrument

__all__ = ["DepthStream", "check_against_feed", "depth_streams"]

_SNAPSHOT_PREFIX = b'{"lastUpdateId"'


@dataclass
class DepthStream:
    """One symbol's snapshot and the diffs applied after it, with the raw decimal strings."""

    market: str  # "spot" or "usdm"
    symbol: str
    instrument: Instrument
    paths: tuple[Path, ...]
    snapshot: dict[str, Any]
    diffs: list[dict[str, Any]]

    @property
    def name(self) -> str:
        """Return ``market:SYMBOL``."""
        return f"{self.market}:{self.symbol}"

    @property
    def level_updates(self) -> int:
        """Return how many level updates the applied diffs carry."""
        return sum(len(diff["b"]) + len(diff["a"]) for diff in self.diffs)


def applied_diffs(
    snapshot_id: int, diffs: list[dict[str, Any]], futures: bool
) -> list[dict[str, Any]]:
    """Return the diffs a book synced on ``snapshot_id`` applies, in order.

    Raises ValueError when the chain breaks (the recordings have no gaps; a gap
    would make the benchmark measure less than the data holds).
    """
    applied: list[dict[str, Any]] = []
    last: int | None = None
    for diff in diffs:
        first_id, last_id = diff["U"], diff["u"]
        if last is None:
            if futures:
                if last_id < snapshot_id:
                    continue
                bridges = first_id <= snapshot_id <= last_id
            else:
                if last_id <= snapshot_id:
                    continue
                bridges = first_id <= snapshot_id + 1 <= last_id
            if not bridges:
                raise ValueError(f"snapshot {snapshot_id} does not bridge diff U={first_id}")
        elif (diff["pu"] != last) if futures else (first_id != last + 1):
            raise ValueError(f"gap in the diff chain after u={last}")
        applied.append(diff)
        last = last_id
    return applied


_STREAM_CACHE: dict[tuple[str, int | None], list[DepthStream]] = {}


def depth_streams(ctx: Context) -> list[DepthStream]:
    """Return every recorded depth stream (cached per data set)."""
    key = (str(ctx.data.root), ctx.line_limit)
    cached = _STREAM_CACHE.get(key)
    if cached is not None:
        return cached
    streams: list[DepthStream] = []
    for market, files in ctx.data.markets().items():
        venue = VENUE_NAMES["spot" if market == "spot" else "usdm"]
        for symbol, paths in files.items():
            snapshot: dict[str, Any] | None = None
            diffs: list[dict[str, Any]] = []
            for frame in load_frames(paths, ctx.line_limit):
                payload = frame.payload
                if payload.startswith(_SNAPSHOT_PREFIX):
                    if snapshot is None:
                        snapshot = orjson.loads(payload)
                elif b'"depthUpdate"' in payload:
                    diffs.append(orjson.loads(payload)["data"])
            if snapshot is None:
                raise ValueError(f"{paths[0]}: no depth snapshot in the data read")
            streams.append(
                DepthStream(
                    market,
                    symbol,
                    KNOWN_INSTRUMENTS[venue][symbol],
                    paths,
                    snapshot,
                    applied_diffs(snapshot["lastUpdateId"], diffs, futures=market != "spot"),
                )
            )
    _STREAM_CACHE[key] = streams
    return streams


def check_against_feed(ctx: Context, stream: DepthStream) -> L2Book:
    """Replay the stream's frames through the real feed; return its book.

    Raises AssertionError when the feed applied a different number of level
    updates than :func:`applied_diffs` selected, or saw a gap or a mismatch.
    """
    feed = BinanceFeed(Bus(), "spot" if stream.market == "spot" else "usdm", verify=True)
    for frame in load_frames(stream.paths, ctx.line_limit):
        feed.on_frame(frame)
    stats = feed.stats
    if stats.level_updates != stream.level_updates:
        raise AssertionError(
            f"{stream.name}: the feed applied {stats.level_updates} level updates, "
            f"the benchmark selected {stream.level_updates}"
        )
    if stats.gaps or stats.oracle_mismatches or stats.crossed_books or stats.malformed_frames:
        raise AssertionError(f"{stream.name}: the feed reported problems: {stats.as_dict()}")
    book = feed.book(stream.symbol)
    if book is None:
        raise AssertionError(f"{stream.name}: the feed has no book")
    return book
