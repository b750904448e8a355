"""On real Binance recordings, live features equal offline features and the reference.

Live: the recording replayed through the kernel's Binance feed (its own
verified books) onto the bus, where the feature engine computes every feature.
Offline: :func:`compute_batch` over the events the feed published, with books
it rebuilds itself. Reference: ``features/reference.py``, every value
recomputed from scratch at every event.
"""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from features.conftest import BUNDLED_FILES
from features.reference import Settings, bar_values, reference_rows
from features.support import agrees, feature_set, mismatches, replay_with_engine
from kernel.bus import Bus, topics
from kernel.features import FeatureEngine
from kernel.features.engine import feature_topic
from tradekernel_models.features import BAR_FEATURES, FEATURES
from tradekernel_sdk.features import FeatureSet, compute_batch
from tradekernel_sdk.fixedpoint import to_fixed
from tradekernel_sdk.types import Bar, Trade

SETTINGS = Settings()
"""The default parameters, bar indicators on one-second bars built from the trades."""

BAR_FEATURE_NAMES = {feature.name for feature in BAR_FEATURES}
MINUTE_NS = 60_000_000_000


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


def ftx_bars(path: Path) -> list[Bar]:
    """The FTX BTC-PERP one-minute candles as bars (prices at 8 decimals)."""
    bars: list[Bar] = []
    with gzip.open(path, "rt") as lines:
        reader = csv.DictReader(lines)
        for row in reader:
            opened = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
            bars.append(
                Bar(
                    "ftx",
                    "BTC-PERP",
                    MINUTE_NS,
                    to_fixed(row["open"], 8),
                    to_fixed(row["high"], 8),
                    to_fixed(row["low"], 8),
                    to_fixed(row["close"], 8),
                    # Written as binary floats ("218102.59507500002"); no indicator reads it.
                    round(Decimal(row["volume"]).scaleb(8)),
                    int(opened.timestamp()) * 1_000_000_000,
                )
            )
    return bars


@pytest.mark.shared_data
@pytest.mark.slow
def test_bar_indicators_on_a_month_of_real_candles_live_equal_batch_and_reference(
    shared_data: Path,
) -> None:
    path = shared_data / "ohlcv" / "ftx_btc-perp_1m_20211231-20220201.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    bars = ftx_bars(path)
    assert len(bars) == 45_031
    specs = FeatureSet(
        tuple(spec for spec in feature_set(SETTINGS).specs if spec.name in BAR_FEATURE_NAMES)
    )
    bus = Bus()
    engine = FeatureEngine(bus, specs, FEATURES)
    engine.start()
    live: list[tuple[object, ...]] = []
    bus.subscribe(feature_topic("ftx", "BTC-PERP"), lambda vector: live.append(vector.values))
    for bar in bars:
        bus.publish(topics.bar("ftx", "BTC-PERP", "1m"), bar)
    table = compute_batch(specs, FEATURES, bars)[("ftx", "BTC-PERP")]
    assert live == table.rows
    # The reference recomputes every EMA from the first bar: every 150th of the first 6,000.
    price_level = max(bar.high for bar in bars)
    for index in range(0, 6_000, 150):
        expected = bar_values(bars[: index + 1], SETTINGS)
        row = dict(zip(table.columns, table.rows[index], strict=True))
        for column, output in zip(table.columns, table.outputs, strict=True):
            assert agrees(row[column], expected[column], output, price_level), (index, column)
