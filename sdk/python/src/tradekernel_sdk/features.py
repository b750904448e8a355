"""The feature API: named, versioned, typed definitions updated incrementally per event.

A feature turns market events into numbers a model can read. Each one is a
subclass of :class:`Feature` with a ``name``, a ``version`` (raised whenever its
definition changes, so a model trained on version 1 is never served version 2),
typed ``Params`` and the :class:`Output` columns it produces. The kernel calls
it once per event of the kinds it declares in ``inputs``, and each call costs
O(1) in the number of events seen so far: a feature keeps running sums and
bounded windows, never the history.

The same code runs live and in training. :class:`FeatureSet` names the features
to compute; :class:`InstrumentFeatures` routes one instrument's events to them
(the kernel's feature engine builds one per instrument), and
:func:`compute_batch` runs exactly that routing over a recorded event sequence,
keeping its own book, so the rows training sees are the rows serving sees.

Values are exact wherever the inputs are: prices and sizes are fixed-point
integers, so ratios and prices derived from them are integers at a stated
``scale`` (the value meant is ``raw / scale``; divisions round toward minus
infinity). Only definitions that are inherently real-valued (logarithms, square
roots, exponential smoothing with unbounded denominators) produce floats, always
by the same operations in the same order. ``None`` means "not defined yet"
(an empty book side, a window not yet full).

Writing one::

    class Spread(Feature):
        name = "spread"
        version = 1
        inputs = frozenset({EventKind.BOOK})

        def describe(self) -> tuple[Output, ...]:
            return (Output("spread", unit="price"),)

        def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
            bid, ask = book.best_bid(), book.best_ask()
            self.values = (None if bid is None or ask is None else ask[0] - bid[0],)

and register it from a plug-in with ``register_features(register)``:
``register("spread", Spread)``.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from tradekernel_sdk.book import SortedBook
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    MarketEvent,
    Trade,
)

__all__ = [
    "RATIO_SCALE",
    "REFERENCE_FORMAT",
    "BarBuilder",
    "ColumnReference",
    "EventKind",
    "Feature",
    "FeatureParamsError",
    "FeatureReference",
    "FeatureSet",
    "FeatureSpec",
    "FeatureTable",
    "InstrumentFeatures",
    "Output",
    "ReplayBook",
    "Value",
    "aggressor_sign",
    "compute_batch",
    "reference_column",
    "reference_from_tables",
    "to_float",
]

RATIO_SCALE = 10**9
"""Scale of dimensionless ratios: a raw value of ``RATIO_SCALE`` means 1."""

Value = int | float | None
"""One output value: a scaled integer, a float, or ``None`` while undefined."""


class FeatureParamsError(ValueError):
    """Parameters that do not fit a feature's ``Params``, or a spec that names another version."""


class EventKind(enum.Enum):
    """The kinds of market events a feature can consume."""

    BOOK = "book"
    """Book snapshots and deltas, with the live book after them."""
    TRADE = "trade"
    """Public trades."""
    BAR = "bar"
    """Completed OHLCV bars."""


class Output(msgspec.Struct, frozen=True):
    """One column a feature produces.

    ``exact`` outputs are integers meaning ``raw / scale``; the others are
    floats (``scale`` is then 1). ``unit`` says what the value measures:
    ``"price"`` and ``"size"`` are the instrument's fixed-point units,
    ``"ratio"`` is dimensionless.
    """

    name: str
    scale: int = 1
    exact: bool = True
    unit: str = ""


class FeatureSpec(msgspec.Struct, frozen=True):
    """What identifies a computed feature: its name, version and parameters.

    This is what a trained model stores (``metadata.json``) and what the
    serving side rebuilds the feature from; :meth:`Feature.from_spec` refuses a
    spec whose version differs from the installed definition's.
    """

    name: str
    version: int
    params: dict[str, Any] = {}


class Feature:
    """Base class of features: override ``describe`` and the ``on_<event>`` methods needed.

    After every call, ``values`` holds the current value of each output, in the
    order of ``describe()``. Subclasses keep their state in attributes set by
    :meth:`reset`, which the kernel also calls when the instrument's book
    becomes invalid.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    inputs: ClassVar[frozenset[EventKind]] = frozenset()

    class Params(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
        """The feature's typed parameters; subclasses extend it with defaults."""

    params: Any
    values: tuple[Value, ...]

    def __init__(self, params: Params | None = None) -> None:
        """Build the feature with ``params`` (the defaults when omitted)."""
        self.params = self.Params() if params is None else params
        self.check_params()
        self.outputs = self.describe()
        self.reset()

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Feature:
        """Build the feature from a plain mapping (a TOML table, JSON), checking every field."""
        try:
            typed = msgspec.convert(dict(params or {}), cls.Params)
        except msgspec.ValidationError as error:
            raise FeatureParamsError(f"feature {cls.name!r}: {error}") from error
        return cls(typed)

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> Feature:
        """Rebuild the feature a spec describes; refuse a spec of another name or version."""
        if spec.name != cls.name or spec.version != cls.version:
            raise FeatureParamsError(
                f"spec asks for {spec.name!r} version {spec.version}, "
                f"but the installed definition is {cls.name!r} version {cls.version}"
            )
        return cls.from_params(spec.params)

    def spec(self) -> FeatureSpec:
        """Return the spec that rebuilds this feature exactly."""
        # Through JSON, so the parameters are plain JSON values (lists, not tuples).
        params = msgspec.json.decode(msgspec.json.encode(self.params))
        return FeatureSpec(self.name, self.version, params)

    def check_params(self) -> None:
        """Raise :class:`FeatureParamsError` when the parameters are out of range."""

    def describe(self) -> tuple[Output, ...]:
        """Return the outputs, in the order of ``values``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything seen; every value becomes undefined."""
        self.values = (None,) * len(self.outputs)

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        """Take a book update; ``book`` is the live book after it."""

    def on_trade(self, trade: Trade) -> None:
        """Take a public trade."""

    def on_bar(self, bar: Bar) -> None:
        """Take a completed bar."""


def to_float(value: Value, output: Output) -> float:
    """Return ``value`` as the real number it means (NaN while undefined)."""
    if value is None:
        return math.nan
    if output.exact:
        return value / output.scale
    return float(value)


class FeatureSet(msgspec.Struct, frozen=True):
    """The features to compute for each instrument, and how bars are built.

    ``bar_interval_ns`` (0: none) makes the instrument's trades into bars of
    that length (see :class:`BarBuilder`) for the features that read bars, in
    addition to any bars the venue publishes.
    """

    specs: tuple[FeatureSpec, ...]
    bar_interval_ns: int = 0

    def build(self, registry: Mapping[str, type[Feature]]) -> list[Feature]:
        """Instantiate each spec from the registered feature classes."""
        features: list[Feature] = []
        for spec in self.specs:
            cls = registry.get(spec.name)
            if cls is None:
                raise FeatureParamsError(
                    f"no feature named {spec.name!r} is registered "
                    f"(registered: {', '.join(sorted(registry)) or 'none'})"
                )
            features.append(cls.from_spec(spec))
        return features


class BarBuilder:
    """Aggregate trades into OHLCV bars of fixed length, by trade time.

    A bar covers ``[ts_open, ts_open + interval_ns)`` with ``ts_open`` a
    multiple of the interval; it is complete when the first trade of a later
    interval arrives. Intervals without trades produce no bar. O(1) per trade.
    """

    def __init__(self, venue: str, symbol: str, interval_ns: int) -> None:
        """Aggregate the trades of one instrument into bars of ``interval_ns``."""
        if interval_ns <= 0:
            raise ValueError("a bar interval must be positive")
        self.venue = venue
        self.symbol = symbol
        self.interval_ns = interval_ns
        self._open_ns: int | None = None
        self._ohlcv = [0, 0, 0, 0, 0]

    def add(self, trade: Trade) -> Bar | None:
        """Add a trade; return the bar it completed, if any."""
        ts_open = trade.ts_event - trade.ts_event % self.interval_ns
        completed = None
        ohlcv = self._ohlcv
        if self._open_ns is not None and ts_open > self._open_ns:
            completed = self._bar()
            self._open_ns = None
        if self._open_ns is None:
            self._open_ns = ts_open
            ohlcv[:] = [trade.price, trade.price, trade.price, trade.price, trade.size]
        else:
            # A trade stamped before the open bar (venue clocks are not monotonic
            # across streams) is counted in the open bar rather than dropped.
            ohlcv[1] = max(ohlcv[1], trade.price)
            ohlcv[2] = min(ohlcv[2], trade.price)
            ohlcv[3] = trade.price
            ohlcv[4] += trade.size
        return completed

    def _bar(self) -> Bar:
        assert self._open_ns is not None
        open_, high, low, close, volume = self._ohlcv
        return Bar(
            self.venue,
            self.symbol,
            self.interval_ns,
            open_,
            high,
            low,
            close,
            volume,
            self._open_ns,
        )


class InstrumentFeatures:
    """One instrument's features and the routing of its events to them.

    The kernel's feature engine keeps one per instrument and :func:`compute_batch`
    uses the same class, so live and training values come from the same calls.
    """

    def __init__(
        self, venue: str, symbol: str, features: Sequence[Feature], bar_interval_ns: int = 0
    ) -> None:
        """Route events of ``venue``/``symbol`` to ``features``."""
        self.venue = venue
        self.symbol = symbol
        self.features = tuple(features)
        self.book_features = tuple(f for f in features if EventKind.BOOK in f.inputs)
        self.trade_features = tuple(f for f in features if EventKind.TRADE in f.inputs)
        self.bar_features = tuple(f for f in features if EventKind.BAR in f.inputs)
        self.bars = (
            BarBuilder(venue, symbol, bar_interval_ns)
            if bar_interval_ns and self.bar_features
            else None
        )
        self.columns = tuple(
            f"{feature.name}.{output.name}" for feature in features for output in feature.outputs
        )
        self.outputs = tuple(output for feature in features for output in feature.outputs)
        self.updates = 0
        """Events taken (book updates, trades, bars), whichever features they reached."""

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        """Update the book features with ``update``; ``book`` is the book after it."""
        self.updates += 1
        for feature in self.book_features:
            feature.on_book(update, book)

    def on_trade(self, trade: Trade) -> None:
        """Update the trade features, and the bar features when the trade completes a bar."""
        self.updates += 1
        for feature in self.trade_features:
            feature.on_trade(trade)
        if self.bars is not None:
            bar = self.bars.add(trade)
            if bar is not None:
                self._update_bar_features(bar)

    def on_bar(self, bar: Bar) -> None:
        """Update the bar features."""
        self.updates += 1
        self._update_bar_features(bar)

    def _update_bar_features(self, bar: Bar) -> None:
        for feature in self.bar_features:
            feature.on_bar(bar)

    def on_status(self, status: BookStatus) -> None:
        """Reset the book features when the book stops being trustworthy."""
        if status.state is not BookState.VALID:
            for feature in self.book_features:
                feature.reset()

    def values(self) -> tuple[Value, ...]:
        """Return every output's current value, in the order of ``columns``."""
        row: list[Value] = []
        for feature in self.features:
            row.extend(feature.values)
        return tuple(row)

    def floats(self) -> list[float]:
        """Return every output as the real number it means (NaN while undefined)."""
        return [
            to_float(value, output)
            for value, output in zip(self.values(), self.outputs, strict=True)
        ]


class ReplayBook(SortedBook):
    """A book rebuilt from snapshots and deltas, for running features offline."""

    def apply(self, update: BookDelta | BookSnapshot) -> None:
        """Replace the book with a snapshot, or apply a delta (size 0 deletes a level)."""
        if isinstance(update, BookSnapshot):
            self.clear()
        self.apply_levels(update.bids, update.asks)


class FeatureTable(msgspec.Struct):
    """The features of one instrument after each of its events, in event order.

    ``ts_recv[i]`` is the receive time of the event after which ``rows[i]`` was
    taken; ``kinds[i]`` its kind (``"book"``, ``"trade"``, ``"bar"``).
    """

    venue: str
    symbol: str
    columns: tuple[str, ...]
    outputs: tuple[Output, ...]
    ts_recv: list[int]
    kinds: list[str]
    rows: list[tuple[Value, ...]]


def compute_batch(
    feature_set: FeatureSet,
    registry: Mapping[str, type[Feature]],
    events: Iterable[MarketEvent],
) -> dict[tuple[str, str], FeatureTable]:
    """Run the streaming features over a recorded event sequence; return a table per instrument.

    The events are those the kernel publishes (snapshots, deltas, statuses,
    trades, bars, in publication order). Books are rebuilt here with
    :class:`ReplayBook`; every feature update is the same call the kernel's
    engine makes live, so each row equals the live vector after that event.
    """
    instruments: dict[tuple[str, str], tuple[InstrumentFeatures, ReplayBook, FeatureTable]] = {}
    for event in events:
        key = (event.venue, event.symbol)
        entry = instruments.get(key)
        if entry is None:
            routed = InstrumentFeatures(
                event.venue, event.symbol, feature_set.build(registry), feature_set.bar_interval_ns
            )
            table = FeatureTable(
                event.venue, event.symbol, routed.columns, routed.outputs, [], [], []
            )
            entry = instruments[key] = (routed, ReplayBook(), table)
        routed, book, table = entry
        if isinstance(event, BookDelta | BookSnapshot):
            book.apply(event)
            routed.on_book(event, book)
            kind = EventKind.BOOK.value
        elif isinstance(event, Trade):
            routed.on_trade(event)
            kind = EventKind.TRADE.value
        elif isinstance(event, Bar):
            routed.on_bar(event)
            kind = EventKind.BAR.value
        else:
            if isinstance(event, BookStatus):
                if event.state is not BookState.VALID:
                    book.clear()
                routed.on_status(event)
            continue
        table.ts_recv.append(_recv_time(event))
        table.kinds.append(kind)
        table.rows.append(routed.values())
    return {key: table for key, (_, _, table) in instruments.items()}


def _recv_time(event: BookDelta | BookSnapshot | Trade | Bar) -> int:
    if isinstance(event, Bar):
        return event.ts_open + event.interval_ns
    return event.ts_recv


def aggressor_sign(side: AggressorSide) -> int:
    """Return +1 for a buyer-initiated trade, -1 for seller-initiated, 0 when unknown."""
    if side is AggressorSide.BUY:
        return 1
    if side is AggressorSide.SELL:
        return -1
    return 0


# -- drift reference ------------------------------------------------------------

REFERENCE_FORMAT = 1
"""Version of the :class:`FeatureReference` JSON shape."""


class ColumnReference(msgspec.Struct, frozen=True):
    """The training distribution of one output, summarised for drift monitoring.

    Values are real numbers (:func:`to_float` of the raw values); undefined
    ones are counted in ``missing`` and left out of everything else.

    * ``bin_edges``: strictly ascending inner boundaries; a value ``x`` falls
      in bin ``bisect_right(bin_edges, x)``, so ``bin_counts`` has one more
      entry than ``bin_edges`` (the outer bins are open-ended). The edges are
      reference quantiles, so the bins hold roughly equal shares.
    * ``quantiles``: the values at probabilities ``i / (len − 1)``, ``i = 0 ..
      len − 1`` (the minimum first, the maximum last): an evenly spaced
      sample of the reference, against which the two-sample
      Kolmogorov–Smirnov statistic is computed.
    """

    count: int
    missing: int
    bin_edges: list[float]
    bin_counts: list[int]
    quantiles: list[float]


class FeatureReference(msgspec.Struct, frozen=True):
    """The reference a model is trained on, stored as ``feature_reference`` in ``metadata.json``.

    ``columns`` maps each column name (``"<feature>.<output>"``) to its
    :class:`ColumnReference`. Serialise with ``msgspec.json.encode`` or
    ``msgspec.to_builtins``; read back with ``msgspec.convert(data, FeatureReference)``.
    """

    format: int
    rows: int
    columns: dict[str, ColumnReference]


def _quantile(ordered: Sequence[float], probability: float) -> float:
    """Return the ``probability`` quantile of sorted values, interpolating linearly."""
    position = probability * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def reference_column(
    values: Iterable[float | None], bins: int = 10, quantiles: int = 101
) -> ColumnReference:
    """Summarise one column's training values: quantile bins with their counts, and quantiles.

    ``None`` and NaN count as missing. With no defined value every list is empty.
    """
    if bins < 1 or quantiles < 2:
        raise ValueError("a reference needs at least one bin and two quantiles")
    defined: list[float] = []
    missing = 0
    for value in values:
        if value is None or math.isnan(value):
            missing += 1
        else:
            defined.append(float(value))
    if not defined:
        return ColumnReference(0, missing, [], [], [])
    defined.sort()
    edges: list[float] = []
    for index in range(1, bins):
        edge = _quantile(defined, index / bins)
        if (not edges or edge > edges[-1]) and edge > defined[0]:
            edges.append(edge)
    counts = [0] * (len(edges) + 1)
    for value in defined:
        counts[bisect.bisect_right(edges, value)] += 1
    sample = [_quantile(defined, index / (quantiles - 1)) for index in range(quantiles)]
    return ColumnReference(len(defined), missing, edges, counts, sample)


def reference_from_tables(
    tables: Iterable[FeatureTable], *, bins: int = 10, quantiles: int = 101
) -> FeatureReference:
    """Summarise training feature tables (one or more instruments, pooled) column by column."""
    columns: dict[str, list[float | None]] = {}
    rows = 0
    for table in tables:
        rows += len(table.rows)
        for index, (name, output) in enumerate(zip(table.columns, table.outputs, strict=True)):
            column = columns.setdefault(name, [])
            column.extend(
                None if row[index] is None else to_float(row[index], output) for row in table.rows
            )
    return FeatureReference(
        REFERENCE_FORMAT,
        rows,
        {name: reference_column(values, bins, quantiles) for name, values in columns.items()},
    )
