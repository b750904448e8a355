"""The feature engine: registered features computed from bus events, per instrument.

The engine subscribes to book, status, trade and bar topics and routes each
event to the instrument's :class:`~tradekernel_sdk.features.InstrumentFeatures`
— the same routing :func:`~tradekernel_sdk.features.compute_batch` runs
offline, so a live vector equals the training row for the same event. Plug-ins
are consulted once, when the engine is built (the registry of feature
classes); no hook is called per event.

Consumers read the latest vector with :meth:`FeatureEngine.latest`, or
subscribe to ``features.<venue>.<symbol>``, on which a :class:`FeatureVector`
is published after every update while someone listens. The cost of each
update (all of an instrument's features for one event) goes into a latency
histogram exported as ``tradekernel_feature_update_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import msgspec
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from kernel.bus import DEFAULT_PRIORITY, Bus
from kernel.features.events import EVENT_PATTERNS
from kernel.metrics import KernelCollector, LatencyHistogram
from tradekernel_sdk.features import (
    Feature,
    FeatureSet,
    InstrumentFeatures,
    Output,
    ReplayBook,
    Value,
    to_float,
)
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import Bar, BookDelta, BookSnapshot, BookState, BookStatus, Trade

__all__ = ["FEATURE_PRIORITY", "FeatureEngine", "FeatureVector", "feature_topic"]

FEATURE_PRIORITY = DEFAULT_PRIORITY - 1
"""Features update before the default subscribers, so they see vectors of the same event."""

BookLookup = Callable[[str, str], BookView | None]
"""``(venue, symbol) -> live book``: the feeds' books, read instead of copied."""


def feature_topic(venue: str, symbol: str) -> str:
    """Topic of the :class:`FeatureVector` published after each update of an instrument."""
    return f"features.{venue}.{symbol}"


class FeatureVector(msgspec.Struct, frozen=True):
    """An instrument's feature values after one event.

    ``values`` are raw (scaled integers, floats, ``None`` while undefined), in
    the order of ``columns``; :meth:`floats` gives the real numbers a model
    reads. ``update`` counts the instrument's updates so far.
    """

    venue: str
    symbol: str
    ts_recv: int
    update: int
    columns: tuple[str, ...]
    outputs: tuple[Output, ...]
    values: tuple[Value, ...]

    def floats(self) -> list[float]:
        """Return each value as the real number it means (NaN while undefined)."""
        return [to_float(v, o) for v, o in zip(self.values, self.outputs, strict=True)]


class _Instrument:
    __slots__ = ("book", "features", "topic", "ts_recv")

    def __init__(self, features: InstrumentFeatures, book: ReplayBook | None) -> None:
        self.features = features
        self.book = book
        self.topic = feature_topic(features.venue, features.symbol)
        self.ts_recv = 0


class FeatureEngine:
    """Compute a :class:`FeatureSet` for each instrument from the events on a bus."""

    def __init__(
        self,
        bus: Bus,
        feature_set: FeatureSet,
        registry: Mapping[str, type[Feature]],
        *,
        books: BookLookup | None = None,
        instruments: Collection[tuple[str, str]] | None = None,
    ) -> None:
        """Build an engine; nothing is subscribed until :meth:`start`.

        ``registry`` maps feature names to classes (the plug-in host's
        ``features()``). ``books`` reads the feeds' live books; without it
        the engine rebuilds each book from the snapshots and deltas it sees.
        ``instruments`` limits the engine to those ``(venue, symbol)`` pairs.
        """
        feature_set.build(registry)  # refuse an unknown name or version now, not on first data
        self.bus = bus
        self.feature_set = feature_set
        self.registry = registry
        self.books = books
        self.only = None if instruments is None else frozenset(instruments)
        self.update_cost = LatencyHistogram()
        self.updates = 0
        self._instruments: dict[tuple[str, str], _Instrument] = {}
        self._handlers: list[tuple[str, Callable[[Any], None]]] = [
            (EVENT_PATTERNS[0], self._on_book),
            (EVENT_PATTERNS[1], self._on_book),
            (EVENT_PATTERNS[2], self._on_status),
            (EVENT_PATTERNS[3], self._on_trade),
            (EVENT_PATTERNS[4], self._on_bar),
        ]
        self._started = False

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the bus."""
        if self._started:
            return
        for pattern, handler in self._handlers:
            self.bus.subscribe(pattern, handler, priority=FEATURE_PRIORITY)
        self._started = True

    def stop(self) -> None:
        """Unsubscribe; the latest vectors stay readable."""
        if not self._started:
            return
        for pattern, handler in self._handlers:
            self.bus.unsubscribe(pattern, handler)
        self._started = False

    # -- reading ---------------------------------------------------------------

    @property
    def instruments(self) -> list[tuple[str, str]]:
        """Return the ``(venue, symbol)`` pairs seen so far."""
        return sorted(self._instruments)

    def columns(self, venue: str, symbol: str) -> tuple[str, ...] | None:
        """Return an instrument's column names, or ``None`` before its first event."""
        entry = self._instruments.get((venue, symbol))
        return None if entry is None else entry.features.columns

    def latest(self, venue: str, symbol: str) -> FeatureVector | None:
        """Return an instrument's current vector, or ``None`` before its first event."""
        entry = self._instruments.get((venue, symbol))
        return None if entry is None else self._vector(entry)

    def vectors(self, keys: Iterable[tuple[str, str]] | None = None) -> list[FeatureVector]:
        """Return the current vectors of ``keys`` (default: every instrument), in that order."""
        chosen = self.instruments if keys is None else list(keys)
        return [self._vector(self._instruments[key]) for key in chosen if key in self._instruments]

    @staticmethod
    def _vector(entry: _Instrument) -> FeatureVector:
        features = entry.features
        return FeatureVector(
            features.venue,
            features.symbol,
            entry.ts_recv,
            features.updates,
            features.columns,
            features.outputs,
            features.values(),
        )

    # -- metrics ---------------------------------------------------------------

    def register_metrics(self, collector: KernelCollector) -> None:
        """Export the update-cost histogram and the update count."""
        collector.add_source(self._families)

    def _families(self) -> Iterable[Any]:
        histogram = self.update_cost
        cost = HistogramMetricFamily(
            "tradekernel_feature_update_seconds",
            "Time to update all of an instrument's features for one event",
        )
        cost.add_metric([], histogram.cumulative_buckets(), histogram.total_ns / 1e9)
        updates = CounterMetricFamily(
            "tradekernel_feature_updates", "Events the feature engine has processed"
        )
        updates.add_metric([], self.updates)
        return [cost, updates]

    # -- events ----------------------------------------------------------------

    def _entry(self, venue: str, symbol: str) -> _Instrument | None:
        key = (venue, symbol)
        entry = self._instruments.get(key)
        if entry is None:
            if self.only is not None and key not in self.only:
                return None
            features = InstrumentFeatures(
                venue,
                symbol,
                self.feature_set.build(self.registry),
                self.feature_set.bar_interval_ns,
            )
            entry = _Instrument(features, ReplayBook() if self.books is None else None)
            self._instruments[key] = entry
        return entry

    def _finish(self, entry: _Instrument, started_ns: int, ts_recv: int) -> None:
        self.update_cost.observe(time.perf_counter_ns() - started_ns)
        self.updates += 1
        entry.ts_recv = ts_recv
        if self.bus.has_subscribers(entry.topic):
            self.bus.publish(entry.topic, self._vector(entry))

    def _on_book(self, update: BookDelta | BookSnapshot) -> None:
        entry = self._entry(update.venue, update.symbol)
        if entry is None:
            return
        started = time.perf_counter_ns()
        book: BookView | None
        if entry.book is not None:
            entry.book.apply(update)
            book = entry.book
        else:
            assert self.books is not None
            book = self.books(update.venue, update.symbol)
            if book is None:
                return
        entry.features.on_book(update, book)
        self._finish(entry, started, update.ts_recv)

    def _on_trade(self, trade: Trade) -> None:
        entry = self._entry(trade.venue, trade.symbol)
        if entry is None:
            return
        started = time.perf_counter_ns()
        entry.features.on_trade(trade)
        self._finish(entry, started, trade.ts_recv)

    def _on_bar(self, bar: Bar) -> None:
        entry = self._entry(bar.venue, bar.symbol)
        if entry is None:
            return
        started = time.perf_counter_ns()
        entry.features.on_bar(bar)
        self._finish(entry, started, bar.ts_open + bar.interval_ns)

    def _on_status(self, status: BookStatus) -> None:
        entry = self._entry(status.venue, status.symbol)
        if entry is None:
            return
        if entry.book is not None and status.state is not BookState.VALID:
            entry.book.clear()
        entry.features.on_status(status)
