"""The kernel's feature engine: features from a real replay through the bus, per instrument."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from features.conftest import BUNDLED_FILES
from features.reference import Settings
from features.support import feature_set, replay_with_engine
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.features import FeatureEngine, recorded_events
from kernel.features.drift import DriftConfig, DriftMonitor
from kernel.metrics import KernelCollector
from tradekernel_models.features import FEATURES, IMBALANCE_FEATURE_SET
from tradekernel_sdk.features import (
    FeatureParamsError,
    FeatureSet,
    FeatureSpec,
    compute_batch,
    reference_from_tables,
)
from tradekernel_sdk.types import BookState, BookStatus

BOTH = [BUNDLED_FILES["BTCUSDT"], BUNDLED_FILES["ETHUSDT"]]
FEATURES_USED = feature_set(Settings())


@pytest.fixture(scope="module")
def both_symbols() -> tuple[object, ...]:
    return replay_with_engine(BOTH, "binance", FEATURES_USED)


def test_engine_keeps_one_vector_per_instrument_equal_to_the_batch_rows(both_symbols) -> None:
    events, vectors, engine = both_symbols
    assert engine.instruments == [("binance", "BTCUSDT"), ("binance", "ETHUSDT")]
    tables = compute_batch(FEATURES_USED, FEATURES, events)
    for key, table in tables.items():
        latest = engine.latest(*key)
        assert latest is not None
        assert latest.values == table.rows[-1]
        assert latest.update == len(table.rows)
        assert [vector.values for vector in vectors[key]] == table.rows
    assert engine.latest("binance", "SOLUSDT") is None


def test_engine_reports_update_cost_per_event_as_a_histogram(both_symbols) -> None:
    _, vectors, engine = both_symbols
    assert engine.update_cost.count == engine.updates == sum(len(v) for v in vectors.values())
    assert 0 < engine.update_cost.quantile(0.5) <= engine.update_cost.quantile(0.99)
    collector = KernelCollector()
    engine.register_metrics(collector)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert f"tradekernel_feature_update_seconds_count {float(engine.updates)}" in text
    assert f"tradekernel_feature_updates_total {float(engine.updates)}" in text


def test_vectors_convert_to_the_real_numbers_their_scales_mean(both_symbols) -> None:
    _, _, engine = both_symbols
    vector = engine.latest("binance", "BTCUSDT")
    assert vector is not None
    values = dict(zip(vector.columns, vector.values, strict=True))
    floats = dict(zip(vector.columns, vector.floats(), strict=True))
    assert floats["microprice.mid"] == values["microprice.mid"] / 2
    assert floats["book_imbalance.imbalance_1"] == values["book_imbalance.imbalance_1"] / 10**9
    assert -1 <= floats["book_imbalance.imbalance_5"] <= 1
    assert floats["ema.ema"] == values["ema.ema"]


def test_engine_with_its_own_books_computes_what_it_does_on_the_feeds_books() -> None:
    bus = Bus()
    engine = FeatureEngine(bus, IMBALANCE_FEATURE_SET, FEATURES)  # no book lookup
    engine.start()
    events = recorded_events([BUNDLED_FILES["ETHUSDT"]], "binance", bus=bus)
    table = compute_batch(IMBALANCE_FEATURE_SET, FEATURES, events)[("binance", "ETHUSDT")]
    latest = engine.latest("binance", "ETHUSDT")
    assert latest is not None and latest.values == table.rows[-1]


def test_engine_limited_to_some_instruments_ignores_the_others() -> None:
    bus = Bus()
    engine = FeatureEngine(
        bus, IMBALANCE_FEATURE_SET, FEATURES, instruments=[("binance", "ETHUSDT")]
    )
    engine.start()
    recorded_events(BOTH, "binance", bus=bus)
    assert engine.instruments == [("binance", "ETHUSDT")]


def test_an_invalid_book_clears_the_book_features_and_keeps_the_trade_features() -> None:
    bus = Bus()
    engine = FeatureEngine(bus, IMBALANCE_FEATURE_SET, FEATURES)
    engine.start()
    recorded_events([BUNDLED_FILES["BTCUSDT"]], "binance", bus=bus)
    before = engine.latest("binance", "BTCUSDT")
    assert before is not None and None not in before.values
    bus.publish(
        "data.status.binance.BTCUSDT",
        BookStatus("binance", "BTCUSDT", BookState.INVALID, "gap", 1, 1),
    )
    after = engine.latest("binance", "BTCUSDT")
    assert after is not None
    values = dict(zip(after.columns, after.values, strict=True))
    assert values["book_imbalance.imbalance_1"] is None
    assert values["ofi.ofi"] is None
    assert (
        values["trade_flow.net_volume"]
        == dict(zip(before.columns, before.values, strict=True))["trade_flow.net_volume"]
    )


def test_engine_refuses_an_unknown_feature_or_version_before_any_data() -> None:
    with pytest.raises(FeatureParamsError, match="no feature named 'ofi2'"):
        FeatureEngine(Bus(), FeatureSet((FeatureSpec("ofi2", 1),)), FEATURES)
    with pytest.raises(FeatureParamsError, match="version 2"):
        FeatureEngine(Bus(), FeatureSet((FeatureSpec("ofi", 2),)), FEATURES)


def test_stopping_the_engine_unsubscribes_it() -> None:
    bus = Bus()
    engine = FeatureEngine(bus, IMBALANCE_FEATURE_SET, FEATURES)
    engine.start()
    engine.stop()
    recorded_events([BUNDLED_FILES["BTCUSDT"]], "binance", bus=bus)
    assert engine.instruments == []


def test_drift_of_one_market_against_a_reference_from_another_alerts_on_the_bus() -> None:
    # The reference: every feature of BTCUSDT; the live market: ETHUSDT, whose prices
    # are twenty times lower, while its imbalances look alike.
    btc_events = recorded_events([BUNDLED_FILES["BTCUSDT"]], "binance")
    reference = reference_from_tables(compute_batch(FEATURES_USED, FEATURES, btc_events).values())
    bus = Bus()
    feed = create_feed("binance", bus)
    engine = FeatureEngine(bus, FEATURES_USED, FEATURES, books=lambda _, s: feed.book(s))
    engine.start()
    monitor = DriftMonitor(reference, DriftConfig(window=1_000, evaluate_every=500, min_values=500))
    monitor.attach(bus, [("binance", "ETHUSDT")])
    recorded_events([BUNDLED_FILES["ETHUSDT"]], "binance", bus=bus, feed=feed)
    statistics = monitor.statistics("binance", "ETHUSDT")
    mid_psi, mid_ks = statistics["microprice.mid"]
    assert mid_ks == 1 and mid_psi is not None and mid_psi > 5
    assert ("binance", "ETHUSDT", "microprice.mid", "psi") in monitor.alerts
    imbalance_psi, imbalance_ks = statistics["book_imbalance.imbalance_10"]
    assert imbalance_ks is not None and imbalance_ks < 1
    assert imbalance_psi is not None and math.isfinite(imbalance_psi)
    monitor.detach()
