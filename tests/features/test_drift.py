"""Drift statistics: PSI and Kolmogorov–Smirnov against hand-computed values, and the monitor."""

from __future__ import annotations

import logging
import math
import random

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from kernel.features import FeatureVector
from kernel.features.drift import (
    PSI_EPSILON,
    DriftConfig,
    DriftMonitor,
    bin_counts,
    ks_statistic,
    population_stability_index,
)
from kernel.metrics import KernelCollector
from tradekernel_sdk.features import (
    RATIO_SCALE,
    FeatureReference,
    Output,
    reference_column,
)

# -- population stability index ------------------------------------------------------


def test_psi_of_two_histograms_is_the_sum_of_share_differences_times_log_ratios() -> None:
    # Shares 0.5/0.3/0.2 against 0.3/0.3/0.4:
    # (0.3 − 0.5)·ln(0.3/0.5) + 0 + (0.4 − 0.2)·ln(0.4/0.2) = 0.2·ln(5/3) + 0.2·ln 2.
    assert population_stability_index([50, 30, 20], [30, 30, 40]) == pytest.approx(
        0.2407945608651872, abs=1e-15
    )


def test_psi_is_zero_for_identical_shares_whatever_the_totals() -> None:
    assert population_stability_index([10, 20, 30], [100, 200, 300]) == pytest.approx(0, abs=1e-15)


def test_psi_gives_an_empty_bin_a_small_share_instead_of_an_infinite_log() -> None:
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert population_stability_index([10, 0], [5, 5]) == pytest.approx(expected, rel=1e-12)


def test_psi_refuses_histograms_of_different_bins_or_without_values() -> None:
    with pytest.raises(ValueError, match="same bins"):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one value"):
        population_stability_index([0, 0], [1, 2])


def test_values_fall_in_the_bin_right_of_an_equal_edge_and_outer_bins_are_open() -> None:
    assert bin_counts([0.0, 1.0], [-5.0, 0.0, 0.5, 1.0, 9.0]) == [1, 2, 2]


# -- Kolmogorov–Smirnov -------------------------------------------------------------


def test_ks_of_shifted_samples_is_the_largest_gap_between_their_step_functions() -> None:
    # At x = 2 the reference has 2/4 at or below, the live sample 0/4.
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5


def test_ks_is_zero_for_the_same_sample_and_one_for_disjoint_ones() -> None:
    assert ks_statistic([1, 2, 2, 3], [1, 2, 2, 3]) == 0
    assert ks_statistic([1, 2], [3, 4, 5]) == 1


def test_ks_consumes_ties_in_both_samples_together() -> None:
    # At 1: 2/3 against 1/3; at 2: 1 against 1.
    assert ks_statistic([1, 1, 2], [1, 2, 2]) == pytest.approx(1 / 3)


def brute_force_ks(first: list[float], second: list[float]) -> float:
    """The definition: the largest |F1(x) − F2(x)| over every point of either sample."""
    return max(
        abs(sum(v <= x for v in first) / len(first) - sum(v <= x for v in second) / len(second))
        for x in first + second
    )


@given(
    st.lists(st.integers(-20, 20), min_size=1, max_size=40),
    st.lists(st.integers(-20, 20), min_size=1, max_size=40),
)
def test_ks_equals_its_definition_on_any_samples(first: list[int], second: list[int]) -> None:
    reference = sorted(float(v) for v in first)
    live = sorted(float(v) for v in second)
    assert ks_statistic(reference, live) == pytest.approx(brute_force_ks(reference, live))


def test_ks_matches_scipy_when_it_is_installed() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is not installed")
    generator = random.Random(7)
    first = sorted(generator.gauss(0, 1) for _ in range(300))
    second = sorted(generator.gauss(0.3, 1.2) for _ in range(200))
    assert ks_statistic(first, second) == pytest.approx(stats.ks_2samp(first, second).statistic)


# -- the reference summary ---------------------------------------------------------


def test_reference_column_has_quantile_edges_equal_bins_and_an_evenly_spaced_sample() -> None:
    column = reference_column([*range(1, 101), None, math.nan], bins=4, quantiles=5)
    # Quantiles by linear interpolation between order statistics: 0.25·99 = 24.75 → 25.75.
    assert column.bin_edges == [25.75, 50.5, 75.25]
    assert column.bin_counts == [25, 25, 25, 25]
    assert column.quantiles == [1, 25.75, 50.5, 75.25, 100]
    assert (column.count, column.missing) == (100, 2)


def test_reference_column_drops_repeated_edges_of_a_lumpy_distribution() -> None:
    column = reference_column([0] * 90 + [1] * 10, bins=10, quantiles=3)
    assert column.bin_edges == [pytest.approx(0.1)]  # deciles up to the 90th are 0, the minimum
    assert column.bin_counts == [90, 10]


def test_reference_survives_a_json_round_trip_as_metadata_stores_it() -> None:
    reference = FeatureReference(1, 3, {"spread.spread": reference_column([1, 2, 3], 2, 3)})
    encoded = msgspec.json.encode({"feature_reference": reference})
    decoded = msgspec.json.decode(encoded)["feature_reference"]
    assert msgspec.convert(decoded, FeatureReference) == reference


# -- the monitor ----------------------------------------------------------------------

COLUMNS = ("book_imbalance.imbalance_1",)
OUTPUTS = (Output("imbalance_1", RATIO_SCALE, unit="ratio"),)


def vector(value: float, update: int) -> FeatureVector:
    return FeatureVector(
        "binance", "BTCUSDT", update, update, COLUMNS, OUTPUTS, (round(value * RATIO_SCALE),)
    )


def normal_reference(shift: float = 0.0) -> FeatureReference:
    generator = random.Random(1)
    values = [generator.gauss(shift, 0.2) for _ in range(5_000)]
    return FeatureReference(1, len(values), {COLUMNS[0]: reference_column(values)})


def test_monitor_stays_quiet_while_live_values_follow_the_reference(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = DriftMonitor(
        normal_reference(), DriftConfig(window=1_000, evaluate_every=250, min_values=250)
    )
    generator = random.Random(2)
    for update in range(2_000):
        monitor.observe(vector(generator.gauss(0, 0.2), update))
    psi, ks = monitor.statistics("binance", "BTCUSDT")[COLUMNS[0]]
    assert psi is not None and psi < 0.05
    assert ks is not None and ks < 0.06
    assert monitor.alerts == {}


def test_monitor_alerts_once_when_live_values_shift_and_exports_its_statistics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = DriftMonitor(
        normal_reference(),
        DriftConfig(
            window=500, evaluate_every=100, min_values=100, psi_threshold=0.25, ks_threshold=0.3
        ),
        model="deeplob",
    )
    generator = random.Random(3)
    with caplog.at_level(logging.WARNING, logger="kernel.features.drift"):
        for update in range(1_500):
            monitor.observe(vector(generator.gauss(0.3, 0.2), update))
    psi, ks = monitor.statistics("binance", "BTCUSDT")[COLUMNS[0]]
    assert psi is not None and psi > 1
    assert ks is not None and ks > 0.5
    # Above the threshold at every evaluation, but an alert only on crossing it.
    assert monitor.alerts == {
        ("binance", "BTCUSDT", COLUMNS[0], "psi"): 1,
        ("binance", "BTCUSDT", COLUMNS[0], "ks"): 1,
    }
    assert sum("feature drift (model deeplob)" in r.getMessage() for r in caplog.records) == 2

    collector = KernelCollector()
    monitor.register_metrics(collector)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    labels = 'feature="book_imbalance.imbalance_1",model="deeplob",symbol="BTCUSDT",venue="binance"'
    assert f"tradekernel_feature_drift_psi{{{labels}}} {psi!r}" in text
    assert f"tradekernel_feature_drift_ks{{{labels}}} {ks!r}" in text
    alert_labels = (
        'feature="book_imbalance.imbalance_1",model="deeplob",statistic="psi",'
        'symbol="BTCUSDT",venue="binance"'
    )
    assert f"tradekernel_feature_drift_alerts_total{{{alert_labels}}} 1.0" in text


def test_monitor_alerts_again_only_after_falling_back_below_the_threshold() -> None:
    monitor = DriftMonitor(
        normal_reference(), DriftConfig(window=200, evaluate_every=200, min_values=200)
    )
    generator = random.Random(4)
    for phase_shift in (0.5, 0.0, 0.5):
        for update in range(200):
            monitor.observe(vector(generator.gauss(phase_shift, 0.2), update))
    assert monitor.alerts[("binance", "BTCUSDT", COLUMNS[0], "psi")] == 2


def test_monitor_ignores_undefined_values_and_columns_without_a_reference() -> None:
    monitor = DriftMonitor(
        normal_reference(), DriftConfig(window=10, evaluate_every=5, min_values=5)
    )
    columns = (*COLUMNS, "spread.spread")
    outputs = (*OUTPUTS, Output("spread", 1, unit="price"))
    for update in range(10):
        monitor.observe(
            FeatureVector("binance", "BTCUSDT", update, update, columns, outputs, (None, 7))
        )
    assert monitor.statistics("binance", "BTCUSDT") == {COLUMNS[0]: (None, None)}
