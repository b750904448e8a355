"""On real Binance recordings, live features equal offline features and the reference.

Live: the recording replayed through the kernel's Binance feed (its own
verified books) onto the bus, where the feature engine computes every feature.
Offline: :func:`compute_batch` over the events the feed published, with books
it rebuilds itself. Reference: ``features/reference.py``, every value
recomputed from scratch at every event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from features.conftest import BUNDLED_FILES
from features.reference import Settings, reference_rows
from features.support import feature_set, mismatches, replay_with_engine
from tradekernel_models.features import FEATURES
from tradekernel_sdk.features import compute_batch
from tradekernel_sdk.types import Trade

SETTINGS = Settings()
"""The default parameters, bar indicators on one-second bars built from the trades."""


@pytest.fixture(scope="module", params=sorted(BUNDLED_FILES))
def bundled_run(request: pytest.FixtureRequest) -> tuple[str, object]:
    symbol: str = request.param
    events, vectors, engine = replay_with_engine(
        [BUNDLED_FILES[symbol]], "binance", feature_set(SETTINGS)
    )
    return symbol, (events, vectors, engine)


def test_live_vectors_equal_batch_rows_exactly_on_the_bundled_slices(bundled_run) -> None:
    symbol, (events, vectors, _) = bundled_run
    tables = compute_batch(feature_set(SETTINGS), FEATURES, events)
    table = tables[("binance", symbol)]
    live = vectors[("binance", symbol)]
    assert len(table.rows) == len(live) > 3_000
    assert [vector.columns for vector in live[:1]] == [table.columns]
    assert [vector.values for vector in live] == table.rows
    assert [vector.ts_recv for vector in live] == table.ts_recv


def test_every_feature_is_defined_on_real_data(bundled_run) -> None:
    symbol, (events, _, _) = bundled_run
    table = compute_batch(feature_set(SETTINGS), FEATURES, events)[("binance", symbol)]
    last = dict(zip(table.columns, table.rows[-1], strict=True))
    assert [column for column, value in last.items() if value is None] == []
    assert table.kinds.count("trade") > 1_000
    assert table.kinds.count("book") > 1_000


def test_batch_rows_equal_the_from_scratch_reference_on_the_bundled_slices(bundled_run) -> None:
    symbol, (events, _, _) = bundled_run
    table = compute_batch(feature_set(SETTINGS), FEATURES, events)[("binance", symbol)]
    expected = reference_rows(events, SETTINGS)[("binance", symbol)]
    price_level = max(event.price for event in events if isinstance(event, Trade))
    assert mismatches(table, expected, price_level) == []


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "venue", "symbol"),
    [
        ("binance_spot", "binance", "btcusdt"),
        ("binance_spot", "binance", "ethusdt"),
        ("binance_usdm", "binance-usdm", "btcusdt"),
        ("binance_usdm", "binance-usdm", "ethusdt"),
    ],
)
def test_full_recordings_live_equals_batch_equals_reference(
    shared_data: Path, folder: str, venue: str, symbol: str
) -> None:
    paths = sorted((shared_data / "orderbook" / folder).glob(f"{symbol}_*.gz"))
    if not paths:
        pytest.skip(f"no {symbol} capture under {shared_data / 'orderbook' / folder}")
    features = feature_set(SETTINGS)
    events, vectors, _ = replay_with_engine(paths, venue, features)
    key = (venue, symbol.upper())
    table = compute_batch(features, FEATURES, events)[key]
    assert [vector.values for vector in vectors[key]] == table.rows
    expected = reference_rows(events, SETTINGS)[key]
    price_level = max(event.price for event in events if isinstance(event, Trade))
    # The reference sorts the whole book at every event; every 7th row keeps this to seconds.
    assert mismatches(table, expected, price_level, every=7) == []
