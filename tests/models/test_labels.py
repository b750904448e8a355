"""Direction labels and volatility targets against a plain reference computed here."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from kernel.models.dataset import (
    STATIONARY,
    UP,
    BookSeries,
    direction_labels,
    load_book_series,
    realised_volatility_bps,
    sample_indices,
)
from models.reference import BUNDLED_BTC, reference_labels


@pytest.fixture(scope="module")
def series() -> BookSeries:
    return load_book_series([BUNDLED_BTC], "binance", "BTCUSDT")


@pytest.mark.parametrize("horizon", [1, 5, 10, 50])
@pytest.mark.parametrize("threshold", [0.0, 2e-6])
def test_labels_equal_the_reference_on_real_data(
    series: BookSeries, horizon: int, threshold: float
) -> None:
    mids = [int(mid) for mid in series.mid_x2]
    expected = reference_labels(mids, horizon, Fraction(threshold))
    assert direction_labels(series.mid_x2, horizon, threshold).tolist() == expected


def test_real_data_has_every_class_at_horizon_ten(series: BookSeries) -> None:
    counts = np.bincount(direction_labels(series.mid_x2, 10, 0.0)[:-10], minlength=3)
    assert all(count > 0 for count in counts)


def test_a_rising_then_flat_mid_is_labelled_up_then_stationary() -> None:
    mids = np.array([100, 100, 102, 104, 104, 104, 104], dtype=np.int64)
    assert direction_labels(mids, 2, 0.0).tolist() == [UP, UP, UP, STATIONARY, STATIONARY, -1, -1]


def test_a_move_inside_the_threshold_is_stationary() -> None:
    mids = np.array([10_000, 10_001, 10_001], dtype=np.int64)
    assert direction_labels(mids, 1, 2e-4).tolist() == [STATIONARY, STATIONARY, -1]
    assert direction_labels(mids, 1, 0.5e-4).tolist() == [UP, STATIONARY, -1]


def test_realised_volatility_sums_the_next_squared_log_returns(series: BookSeries) -> None:
    mids = [int(mid) for mid in series.mid_x2]
    volatility = realised_volatility_bps(series.mid_x2, 10)
    for t in (0, 100, 500, len(mids) - 11):
        returns = [math.log(mids[j] / mids[j - 1]) for j in range(t + 1, t + 11)]
        assert volatility[t] == pytest.approx(math.sqrt(sum(r * r for r in returns)) * 1e4)
    assert np.isnan(volatility[-10:]).all()


def test_samples_have_a_full_window_and_a_known_label(series: BookSeries) -> None:
    samples = sample_indices(series, window=20, horizon=10)
    assert samples[0] == 19
    assert samples[-1] == len(series) - 11
