"""Book windows, labels and streaming features built from recordings, without torch.

One *event* is one book update the venue feed applied and published for the
symbol (a verified diff, or the snapshot a (re)sync starts from). For each
event the top ``levels`` of each side are taken from the live book, in
DeepLOB's column order: for level 1..L, ask price, ask size, bid price, bid
size. Prices and sizes stay exact fixed-point integers here; the network sees
them as float32 and normalises inside its graph.

Labels follow the DeepLOB / FI-2010 protocol: with ``m(t)`` the mid after
event ``t``, ``l(t) = (mean(m(t+1..t+k)) - m(t)) / m(t)``; up when
``l > threshold``, down when ``l < -threshold``, stationary otherwise.

Features (what the baselines read, and the drift reference) are the streaming
features, computed by :func:`~tradekernel_sdk.features.compute_batch` over the
events the feed published: row ``t`` is the vector the kernel's feature engine
holds right after event ``t``. There is no second implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from kernel.adapters.registry import create_feed
from kernel.bus import Bus, topics
from kernel.features import recorded_events
from tradekernel_sdk.features import (
    EventKind,
    Feature,
    FeatureSet,
    FeatureTable,
    compute_batch,
    to_float,
)
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus, MarketEvent

__all__ = [
    "CLASS_NAMES",
    "DOWN",
    "STATIONARY",
    "UP",
    "BookSeries",
    "book_columns",
    "direction_labels",
    "file_sha256",
    "load_book_series",
    "realised_volatility_bps",
    "sample_indices",
    "windows",
]

DOWN: Final = 0
STATIONARY: Final = 1
UP: Final = 2
CLASS_NAMES: Final = ("down", "stationary", "up")

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

NO_FEATURES: Final = FeatureSet(())
"""A feature set with no features: book windows and labels only."""


@dataclass(frozen=True)
class BookSeries:
    """The top of one symbol's book after every event, in event order.

    ``book`` is int64 ``[events, 4 * levels]`` in DeepLOB column order;
    ``segment`` numbers the stretches between resynchronisations, so no
    window or label ever spans a book that went invalid. ``features.rows[t]``
    is the streaming feature vector right after event ``t`` (see
    :func:`load_book_series`), ``features.ts_recv`` equal to ``ts_recv``.
    """

    venue: str
    symbol: str
    levels: int
    book: Int64Array
    segment: Int64Array
    ts_recv: Int64Array
    features: FeatureTable

    def __len__(self) -> int:
        return int(self.book.shape[0])

    def feature_rows(self, events: npt.NDArray[np.int64]) -> FeatureTable:
        """Return the feature rows of ``events`` (exact raw values) as a table of their own."""
        table = self.features
        chosen = [int(event) for event in events]
        return FeatureTable(
            table.venue,
            table.symbol,
            table.columns,
            table.outputs,
            [table.ts_recv[event] for event in chosen],
            [table.kinds[event] for event in chosen],
            [table.rows[event] for event in chosen],
        )

    def feature_floats(self, events: npt.NDArray[np.int64]) -> FloatArray:
        """Return the features of ``events`` as reals ``[events, columns]``, NaN where undefined."""
        table = self.features
        outputs = table.outputs
        values = [
            [
                to_float(value, output)
                for value, output in zip(table.rows[int(event)], outputs, strict=True)
            ]
            for event in events
        ]
        return np.asarray(values, dtype=np.float64).reshape(len(values), len(outputs))

    @property
    def mid_x2(self) -> Int64Array:
        """Return best ask + best bid of every event (twice the mid, exact)."""
        return self.book[:, 0] + self.book[:, 2]


def book_columns(levels: int) -> list[str]:
    """Return the names of the model's input columns, in order."""
    names: list[str] = []
    for level in range(1, levels + 1):
        names += [
            f"ask_price_{level}",
            f"ask_size_{level}",
            f"bid_price_{level}",
            f"bid_size_{level}",
        ]
    return names


def _row(
    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], levels: int
) -> list[int]:
    """Return one event's columns; a side thinner than ``levels`` repeats its last price, size 0."""
    row: list[int] = []
    for level in range(levels):
        if level < len(asks):
            ask_price, ask_size = asks[level]
        else:
            ask_price, ask_size = (asks[-1][0] if asks else 0), 0
        if level < len(bids):
            bid_price, bid_size = bids[level]
        else:
            bid_price, bid_size = (bids[-1][0] if bids else 0), 0
        row += [ask_price, ask_size, bid_price, bid_size]
    return row


def load_book_series(
    files: Sequence[Path],
    venue: str,
    symbol: str | None = None,
    levels: int = 10,
    *,
    feature_set: FeatureSet = NO_FEATURES,
    registry: Mapping[str, type[Feature]] | None = None,
) -> BookSeries:
    """Replay ``files`` through ``venue``'s feed; keep ``symbol``'s top levels and features.

    Without ``symbol`` the recording must carry exactly one symbol's book.
    ``feature_set`` is computed with the feature classes of ``registry``.
    """
    missing = [str(path) for path in files if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    bus = Bus()
    feed = create_feed(venue, bus)
    rows: dict[str, list[list[int]]] = {}
    segments: dict[str, list[int]] = {}
    stamps: dict[str, list[int]] = {}
    current_segment: dict[str, int] = {}

    def on_book(event: BookDelta | BookSnapshot) -> None:
        name = event.symbol
        if symbol is not None and name != symbol:
            return
        book = feed.book(name)
        if book is None:
            return
        rows.setdefault(name, []).append(
            _row(book.bid_levels(levels), book.ask_levels(levels), levels)
        )
        segments.setdefault(name, []).append(current_segment.get(name, 0))
        stamps.setdefault(name, []).append(event.ts_recv)

    def on_status(status: BookStatus) -> None:
        if status.state is not BookState.VALID:
            current_segment[status.symbol] = current_segment.get(status.symbol, 0) + 1

    bus.subscribe(topics.book(venue, "*"), on_book)
    bus.subscribe(topics.snapshot(venue, "*"), on_book)
    bus.subscribe(topics.book_status(venue, "*"), on_status)
    events = recorded_events(files, venue, bus=bus, feed=feed)
    if symbol is None:
        if len(rows) != 1:
            found = ", ".join(sorted(rows)) or "none"
            raise ValueError(f"name the symbol: the data has books for {found}")
        symbol = next(iter(rows))
    if symbol not in rows:
        found = ", ".join(sorted(rows)) or "none"
        raise ValueError(f"no {venue} book for {symbol} in the data (books found: {found})")
    series = BookSeries(
        venue=venue,
        symbol=symbol,
        levels=levels,
        book=np.asarray(rows[symbol], dtype=np.int64),
        segment=np.asarray(segments[symbol], dtype=np.int64),
        ts_recv=np.asarray(stamps[symbol], dtype=np.int64),
        features=_book_event_features(events, venue, symbol, feature_set, registry or {}),
    )
    if len(series.features.rows) != len(series):
        raise RuntimeError(
            f"{len(series.features.rows)} feature rows for {len(series)} book events of {symbol}"
        )
    return series


def _book_event_features(
    events: Sequence[MarketEvent],
    venue: str,
    symbol: str,
    feature_set: FeatureSet,
    registry: Mapping[str, type[Feature]],
) -> FeatureTable:
    """Run the streaming features over the instrument's events; keep the rows taken after books.

    ``compute_batch`` takes a row after every book, trade and bar event, each
    equal to the live engine's vector after that event. Keeping the rows of
    book events, in order, makes row ``t`` the vector right after book event
    ``t``: it has seen that book and every trade and bar published before it,
    and nothing published later. A sample at event ``t`` thus reads features
    of the same moment its input window ends, never a later one; its label
    reads the mids after it.
    """
    instrument_events = [
        event for event in events if event.venue == venue and event.symbol == symbol
    ]
    table = compute_batch(feature_set, registry, instrument_events)[(venue, symbol)]
    book = EventKind.BOOK.value
    kept = [index for index, kind in enumerate(table.kinds) if kind == book]
    return FeatureTable(
        venue,
        symbol,
        table.columns,
        table.outputs,
        [table.ts_recv[index] for index in kept],
        [book] * len(kept),
        [table.rows[index] for index in kept],
    )


def direction_labels(mid_x2: Int64Array, horizon: int, threshold: float) -> npt.NDArray[np.int64]:
    """Label every event whose next ``horizon`` mids are known; the last ``horizon`` get -1.

    ``(mean(m[t+1..t+k]) - m[t]) / m[t]`` against ``threshold``: up, down or stationary.
    The sum of the next mids is formed exactly, in integers (as offsets from the
    first mid, so it cannot overflow), and compared with ``threshold * k * m[t]``.
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    events = mid_x2.shape[0]
    labels = np.full(events, -1, dtype=np.int64)
    if events <= horizon:
        return labels
    offsets = mid_x2 - mid_x2[0]
    cumulative = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(offsets)))
    count = events - horizon
    future_sum = cumulative[1 + horizon : 1 + horizon + count] - cumulative[1 : 1 + count]
    excess = future_sum - horizon * offsets[:count]  # sum(m[t+1..t+k]) - k * m[t], exact
    bound = threshold * horizon * mid_x2[:count].astype(np.float64)
    labels[:count] = np.where(excess > bound, UP, np.where(excess < -bound, DOWN, STATIONARY))
    return labels


def realised_volatility_bps(mid_x2: Int64Array, horizon: int) -> FloatArray:
    """Return the realised volatility of the next ``horizon`` events, in basis points.

    ``sqrt(sum((ln m[j] - ln m[j-1])^2 for j in t+1..t+k)) * 1e4``; NaN where unknown.
    """
    log_mid = np.log(mid_x2.astype(np.float64))
    squared = np.concatenate(([0.0], np.diff(log_mid) ** 2))
    cumulative = np.concatenate(([0.0], np.cumsum(squared)))
    events = log_mid.shape[0]
    volatility = np.full(events, np.nan)
    count = max(events - horizon, 0)
    total = cumulative[1 + horizon : 1 + horizon + count] - cumulative[1 : 1 + count]
    volatility[:count] = np.sqrt(total) * 1e4
    return volatility


def sample_indices(series: BookSeries, window: int, horizon: int) -> npt.NDArray[np.int64]:
    """Return the events that end a full window and have a label, all inside one segment."""
    events = len(series)
    segment = series.segment
    candidates = np.arange(window - 1, max(events - horizon, window - 1), dtype=np.int64)
    if candidates.size == 0:
        return candidates
    same_start = segment[candidates - window + 1] == segment[candidates]
    same_end = segment[candidates + horizon] == segment[candidates]
    kept: Int64Array = candidates[same_start & same_end]
    return kept


def windows(series: BookSeries, ends: npt.NDArray[np.int64], window: int) -> Int64Array:
    """Return the exact book rows ``[len(ends), window, columns]`` ending at each of ``ends``."""
    offsets = np.arange(-window + 1, 1, dtype=np.int64)
    rows: Int64Array = series.book[ends[:, None] + offsets[None, :]]
    return rows


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(files: Sequence[Path]) -> list[dict[str, Any]]:
    """Return each data file's name, size and SHA-256, for the metadata."""
    return [
        {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": file_sha256(Path(path))}
        for path in files
    ]
