"""Drift of live feature values against the training reference: PSI and Kolmogorov–Smirnov.

A model's ``metadata.json`` carries a :class:`~tradekernel_sdk.features.FeatureReference`
(quantile bins with counts, and an evenly spaced quantile sample, per column).
:class:`DriftMonitor` keeps the last ``window`` live values of each column per
instrument — a bin count per value, updated in O(log bins) as values enter and
leave the window — and every ``evaluate_every`` observations computes

* the **population stability index**, ``PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)``
  over the reference bins, with ``e_i`` the reference share and ``a_i`` the
  live share of bin ``i``; a share of zero is replaced by
  :data:`PSI_EPSILON` so the logarithm stays finite (Siddiqi, "Credit Risk
  Scorecards", 2006, ch. 8; Yurdakul, "Statistical properties of population
  stability index", 2018). Rules of thumb: below 0.1 stable, 0.1–0.25 some
  shift, above 0.25 a significant shift;
* the two-sample **Kolmogorov–Smirnov statistic**,
  ``D = sup_x |F_ref(x) − F_live(x)|`` between the empirical distribution
  functions of the reference's quantile sample and of the live window
  (Smirnov 1948; evaluated exactly at every jump of either function).

Both are exported as gauges labelled by venue, symbol and column. A statistic
that crosses its threshold upward logs a warning and counts an alert
(``tradekernel_feature_drift_alerts_total``); it alerts again only after
falling back below.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kernel.bus import Bus
from kernel.features.engine import FeatureVector, feature_topic
from kernel.metrics import KernelCollector
from tradekernel_sdk.features import ColumnReference, FeatureReference, to_float

__all__ = [
    "PSI_EPSILON",
    "DriftAlert",
    "DriftConfig",
    "DriftMonitor",
    "bin_counts",
    "ks_statistic",
    "population_stability_index",
]

log = logging.getLogger(__name__)

PSI_EPSILON = 1e-4
"""The share an empty bin is given in the PSI, so ``ln(a / e)`` stays finite."""


def bin_counts(edges: Sequence[float], values: Iterable[float]) -> list[int]:
    """Count ``values`` into the bins of ``edges`` (``bisect_right``; open-ended outer bins)."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bisect.bisect_right(edges, value)] += 1
    return counts


def population_stability_index(
    expected_counts: Sequence[int], actual_counts: Sequence[int], epsilon: float = PSI_EPSILON
) -> float:
    """Return ``Σ (a − e) ln(a / e)`` over bins, from counts turned into shares."""
    if len(expected_counts) != len(actual_counts):
        raise ValueError("the two histograms must have the same bins")
    expected_total = sum(expected_counts)
    actual_total = sum(actual_counts)
    if not expected_total or not actual_total:
        raise ValueError("both histograms need at least one value")
    index = 0.0
    for expected, actual in zip(expected_counts, actual_counts, strict=True):
        e = max(expected / expected_total, epsilon)
        a = max(actual / actual_total, epsilon)
        index += (a - e) * math.log(a / e)
    return index


def ks_statistic(reference_sorted: Sequence[float], live_sorted: Sequence[float]) -> float:
    """Return the two-sample Kolmogorov–Smirnov statistic of two sorted samples.

    Walks both samples once, evaluating ``|F_ref − F_live|`` after every
    distinct value (ties in either sample are consumed together).
    """
    n, m = len(reference_sorted), len(live_sorted)
    if not n or not m:
        raise ValueError("both samples need at least one value")
    i = j = 0
    largest = 0.0
    while i < n and j < m:
        x = min(reference_sorted[i], live_sorted[j])
        while i < n and reference_sorted[i] <= x:
            i += 1
        while j < m and live_sorted[j] <= x:
            j += 1
        largest = max(largest, abs(i / n - j / m))
    return largest


class DriftConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How live values are compared with the reference.

    ``window`` live values per column are kept; the statistics are computed
    every ``evaluate_every`` observations once at least ``min_values`` are
    defined. An alert fires when PSI exceeds ``psi_threshold`` or KS exceeds
    ``ks_threshold``.
    """

    window: int = 2_000
    evaluate_every: int = 500
    min_values: int = 200
    psi_threshold: float = 0.25
    ks_threshold: float = 0.2


@dataclass(frozen=True)
class DriftAlert:
    """A statistic that crossed its threshold upward: what listeners are told."""

    model: str
    venue: str
    symbol: str
    feature: str
    statistic: str
    value: float
    threshold: float


class _Column:
    """One column's live window for one instrument, with its bin counts kept current."""

    __slots__ = ("alerting", "counts", "edges", "ks", "psi", "reference", "values")

    def __init__(self, reference: ColumnReference) -> None:
        self.reference = reference
        self.edges = reference.bin_edges
        self.counts = [0] * len(reference.bin_counts)
        self.values: deque[float] = deque()
        self.psi: float | None = None
        self.ks: float | None = None
        self.alerting = {"psi": False, "ks": False}

    def add(self, value: float, window: int) -> None:
        values = self.values
        values.append(value)
        self.counts[bisect.bisect_right(self.edges, value)] += 1
        if len(values) > window:
            self.counts[bisect.bisect_right(self.edges, values.popleft())] -= 1


class DriftMonitor:
    """Compare live feature vectors with a training reference, per instrument and column."""

    def __init__(
        self, reference: FeatureReference, config: DriftConfig | None = None, *, model: str = ""
    ) -> None:
        """Monitor the columns of ``reference`` that have reference values."""
        self.reference = reference
        self.config = DriftConfig() if config is None else config
        self.model = model
        self._columns = {name: column for name, column in reference.columns.items() if column.count}
        self._live: dict[tuple[str, str], dict[str, _Column]] = {}
        self._indexes: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        self._observed: dict[tuple[str, str], int] = {}
        self.alerts: dict[tuple[str, str, str, str], int] = {}
        self.alert_listeners: list[Callable[[DriftAlert], None]] = []
        """Called with each alert, on the thread that observes (the event loop in the kernel)."""
        self._bus: Bus | None = None
        self._topics: list[str] = []

    # -- wiring ----------------------------------------------------------------

    def attach(self, bus: Bus, instruments: Iterable[tuple[str, str]]) -> None:
        """Observe the vectors the feature engine publishes for ``instruments``."""
        self._bus = bus
        for venue, symbol in instruments:
            topic = feature_topic(venue, symbol)
            bus.subscribe(topic, self.observe)
            self._topics.append(topic)

    def detach(self) -> None:
        """Stop observing."""
        if self._bus is not None:
            for topic in self._topics:
                self._bus.unsubscribe(topic, self.observe)
        self._topics.clear()

    def register_metrics(self, collector: KernelCollector) -> None:
        """Export PSI and KS gauges and the alert counter."""
        collector.add_source(self._families)

    # -- observing -------------------------------------------------------------

    def observe(self, vector: FeatureVector) -> None:
        """Add one vector's defined values to the windows; evaluate when due."""
        key = (vector.venue, vector.symbol)
        live = self._live.get(key)
        if live is None:
            live = self._live[key] = {name: _Column(ref) for name, ref in self._columns.items()}
        indexes = self._indexes.get(vector.columns)
        if indexes is None:
            indexes = self._indexes[vector.columns] = [
                (index, name) for index, name in enumerate(vector.columns) if name in live
            ]
        window = self.config.window
        values = vector.values
        outputs = vector.outputs
        for index, name in indexes:
            raw = values[index]
            if raw is None:
                continue
            value = to_float(raw, outputs[index])
            if not math.isnan(value):
                live[name].add(value, window)
        observed = self._observed.get(key, 0) + 1
        self._observed[key] = observed
        if observed % self.config.evaluate_every == 0:
            self.evaluate(vector.venue, vector.symbol)

    def evaluate(self, venue: str, symbol: str) -> dict[str, tuple[float | None, float | None]]:
        """Compute PSI and KS of every column of an instrument now; alert on crossings."""
        results: dict[str, tuple[float | None, float | None]] = {}
        for name, column in self._live.get((venue, symbol), {}).items():
            if len(column.values) >= self.config.min_values:
                column.psi = population_stability_index(column.reference.bin_counts, column.counts)
                column.ks = ks_statistic(column.reference.quantiles, sorted(column.values))
                self._check((venue, symbol, name), column, "psi")
                self._check((venue, symbol, name), column, "ks")
            results[name] = (column.psi, column.ks)
        return results

    def _check(self, key: tuple[str, str, str], column: _Column, statistic: str) -> None:
        value = column.psi if statistic == "psi" else column.ks
        threshold = self.config.psi_threshold if statistic == "psi" else self.config.ks_threshold
        above = value is not None and value > threshold
        if above and not column.alerting[statistic]:
            venue, symbol, name = key
            alert = (venue, symbol, name, statistic)
            self.alerts[alert] = self.alerts.get(alert, 0) + 1
            log.warning(
                "feature drift%s: %s on %s.%s has %s %.4f, above the threshold %.4f",
                f" (model {self.model})" if self.model else "",
                name,
                venue,
                symbol,
                statistic.upper(),
                value,
                threshold,
            )
            column.alerting[statistic] = above
            for listener in self.alert_listeners:
                listener(DriftAlert(self.model, *alert, float(value or 0.0), threshold))
        column.alerting[statistic] = above

    def statistics(self, venue: str, symbol: str) -> dict[str, tuple[float | None, float | None]]:
        """Return the last computed ``(psi, ks)`` of each column of an instrument."""
        return {
            name: (column.psi, column.ks)
            for name, column in self._live.get((venue, symbol), {}).items()
        }

    # -- metrics ---------------------------------------------------------------

    def _families(self) -> Iterable[Any]:
        labels = ["model", "venue", "symbol", "feature"]
        psi = GaugeMetricFamily(
            "tradekernel_feature_drift_psi",
            "Population stability index of live values against the training reference",
            labels=labels,
        )
        ks = GaugeMetricFamily(
            "tradekernel_feature_drift_ks",
            "Two-sample Kolmogorov-Smirnov statistic of live values against the training reference",
            labels=labels,
        )
        for (venue, symbol), columns in self._live.items():
            for name, column in columns.items():
                if column.psi is not None:
                    psi.add_metric([self.model, venue, symbol, name], column.psi)
                if column.ks is not None:
                    ks.add_metric([self.model, venue, symbol, name], column.ks)
        alerts = CounterMetricFamily(
            "tradekernel_feature_drift_alerts",
            "Times a drift statistic crossed its threshold upward",
            labels=[*labels, "statistic"],
        )
        for (venue, symbol, name, statistic), count in self.alerts.items():
            alerts.add_metric([self.model, venue, symbol, name, statistic], count)
        return [psi, ks, alerts]
