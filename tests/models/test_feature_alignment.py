"""Training reads the streaming features at each sample's own event, as the kernel does live.

The live side is the kernel's feature engine on a replay of the bundled real
Binance slice: at every BTCUSDT book event, a subscriber that runs after the
engine (and before the feed has read the next frame) records the engine's
vector. Training's side is what ``tradekernel train`` fits the
logistic-regression baseline on and stores as the drift reference.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from kernel.adapters.registry import create_feed
from kernel.bus import Bus, topics
from kernel.cli import main
from kernel.features import FeatureEngine, FeatureVector, recorded_events
from kernel.models.baselines import LogisticRegression, fit_logistic_regression
from kernel.models.dataset import (
    BookSeries,
    direction_labels,
    load_book_series,
    sample_indices,
)
from kernel.models.evaluate import evaluate_version
from kernel.models.features import explicit_feature_set
from kernel.models.metrics import classification_report
from kernel.models.repository import ModelRepository
from models.reference import BUNDLED_BTC
from models.tiny import tiny_config
from tradekernel_models.features import FEATURES, IMBALANCE_FEATURE_SET
from tradekernel_sdk.features import FeatureSet, FeatureTable, compute_batch, reference_from_tables
from tradekernel_sdk.types import BookDelta, BookSnapshot, MarketEvent, Trade

VENUE, SYMBOL = "binance", "BTCUSDT"
WINDOW, HORIZON = 20, 10
FEATURE_SET = explicit_feature_set(IMBALANCE_FEATURE_SET, FEATURES)

TINY_CONFIG = tiny_config(
    "aligned", venue=VENUE, symbol=SYMBOL, window=WINDOW, horizon=HORIZON, epochs=1
)


def live_vectors_at_book_events(
    feature_set: FeatureSet,
) -> tuple[list[MarketEvent], list[FeatureVector]]:
    """Replay the slice into a feature engine; return the events and its vector at each book event.

    The recorder subscribes at the default priority, so it runs after the
    engine's update for the same event and before the next frame is read:
    the vector it sees cannot hold anything published later.
    """
    bus = Bus()
    feed = create_feed(VENUE, bus)
    engine = FeatureEngine(bus, feature_set, FEATURES, books=lambda _, symbol: feed.book(symbol))
    engine.start()
    seen: list[FeatureVector] = []

    def record(event: BookDelta | BookSnapshot) -> None:
        vector = engine.latest(VENUE, SYMBOL)
        assert vector is not None and vector.ts_recv == event.ts_recv
        seen.append(vector)

    bus.subscribe(topics.book(VENUE, SYMBOL), record)
    bus.subscribe(topics.snapshot(VENUE, SYMBOL), record)
    events = recorded_events([BUNDLED_BTC], VENUE, bus=bus, feed=feed)
    engine.stop()
    return events, seen


@pytest.fixture(scope="module")
def live() -> tuple[list[MarketEvent], list[FeatureVector]]:
    return live_vectors_at_book_events(FEATURE_SET)


@pytest.fixture(scope="module")
def series() -> BookSeries:
    return load_book_series(
        [BUNDLED_BTC], VENUE, SYMBOL, feature_set=FEATURE_SET, registry=FEATURES
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    pytest.importorskip("torch", reason="training needs the tradekernel-models train extra")
    folder = tmp_path_factory.mktemp("aligned")
    config = folder / "aligned.toml"
    config.write_text(TINY_CONFIG)
    with redirect_stdout(io.StringIO()):
        assert main(["train", "--config", str(config)]) == 0
    return ModelRepository(folder / "repository")


def stored_fold_training_samples(
    metadata: dict[str, Any], series: BookSeries
) -> npt.NDArray[np.int64]:
    """Recompute the stored fold's training samples from the metadata's split settings."""
    from tradekernel_models.training.splits import walk_forward_splits

    splits = metadata["splits"]
    samples = sample_indices(series, metadata["input"]["window"], metadata["label"]["horizon"])
    stored_fold = walk_forward_splits(
        samples, splits["folds"], metadata["label"]["horizon"], splits["validation_fraction"]
    )[splits["stored_fold"] - 1]
    train: npt.NDArray[np.int64] = stored_fold.train
    assert [int(train[0]), int(train[-1])] == splits["events"][-1]["train"]
    return train


def test_every_book_event_reads_the_live_vector_of_that_event_exactly(
    series: BookSeries, live: tuple[list[MarketEvent], list[FeatureVector]]
) -> None:
    _, vectors = live
    assert len(vectors) == len(series) > 1_000
    assert series.features.columns == vectors[0].columns
    assert series.features.ts_recv == [vector.ts_recv for vector in vectors]
    assert series.features.ts_recv == series.ts_recv.tolist()
    assert series.features.rows == [vector.values for vector in vectors]
    exact = [index for index, output in enumerate(series.features.outputs) if output.exact]
    assert len(exact) == len(series.features.columns)  # every imbalance feature is an integer
    defined = [row[index] for row in series.features.rows for index in exact]
    assert all(type(value) is int for value in defined if value is not None)


def test_the_baseline_input_rows_are_the_live_vectors_as_reals(
    series: BookSeries, live: tuple[list[MarketEvent], list[FeatureVector]]
) -> None:
    _, vectors = live
    samples = sample_indices(series, WINDOW, HORIZON)
    expected = np.asarray([vectors[int(event)].floats() for event in samples])
    np.testing.assert_array_equal(series.feature_floats(samples), expected)
    # Undefined values stay undefined (NaN) until the baseline standardises them.
    assert np.isnan(expected).any() and not np.isnan(expected[-1]).any()


def test_no_feature_row_reads_an_event_published_after_its_sample(
    series: BookSeries, live: tuple[list[MarketEvent], list[FeatureVector]]
) -> None:
    events, _ = live
    book_positions = [
        position
        for position, event in enumerate(events)
        if isinstance(event, BookDelta | BookSnapshot) and event.symbol == SYMBOL
    ]
    # Samples whose next published event is a trade: a row taken one event late
    # would already count that trade in the signed trade flow.
    followed_by_trade = [
        sample
        for sample in sample_indices(series, WINDOW, HORIZON).tolist()
        if isinstance(events[book_positions[sample] + 1], Trade)
    ]
    chosen = followed_by_trade[:: max(len(followed_by_trade) // 6, 1)]
    assert len(chosen) >= 5
    late_rows_differ = 0
    for sample in chosen:
        position = book_positions[sample]
        prefix = compute_batch(FEATURE_SET, FEATURES, events[: position + 1])[(VENUE, SYMBOL)]
        assert series.features.rows[sample] == prefix.rows[-1]
        one_later = compute_batch(FEATURE_SET, FEATURES, events[: position + 2])[(VENUE, SYMBOL)]
        late_rows_differ += one_later.rows[-1] != prefix.rows[-1]
    assert late_rows_differ > 0


def test_the_stored_baseline_was_fitted_on_the_live_vectors_of_the_training_samples(
    trained: ModelRepository,
    series: BookSeries,
    live: tuple[list[MarketEvent], list[FeatureVector]],
) -> None:
    _, vectors = live
    metadata = trained.open("aligned").metadata
    train = stored_fold_training_samples(metadata, series)
    labels = direction_labels(series.mid_x2, HORIZON, metadata["label"]["threshold"])
    refitted = fit_logistic_regression(
        np.asarray([vectors[int(event)].floats() for event in train]),
        labels[train],
        columns=vectors[0].columns,
    )
    assert metadata["baselines"]["logistic_regression"] == refitted.as_json()


def test_the_drift_reference_is_reference_from_tables_of_the_training_rows(
    trained: ModelRepository,
    series: BookSeries,
    live: tuple[list[MarketEvent], list[FeatureVector]],
) -> None:
    _, vectors = live
    metadata = trained.open("aligned").metadata
    train = stored_fold_training_samples(metadata, series)
    rows = [vectors[int(event)] for event in train]
    table = FeatureTable(
        VENUE,
        SYMBOL,
        rows[0].columns,
        rows[0].outputs,
        [vector.ts_recv for vector in rows],
        ["book"] * len(rows),
        [vector.values for vector in rows],
    )
    expected = msgspec.to_builtins(reference_from_tables([table]))
    stored = metadata["feature_reference"]
    assert stored["rows"] == expected["rows"] == train.size
    feature_columns = {
        name: column for name, column in stored["columns"].items() if not name.startswith("input.")
    }
    assert feature_columns == expected["columns"]


def series_columns() -> tuple[str, ...]:
    """The columns of the imbalance set, as the features describe them."""
    return tuple(
        f"{feature.name}.{output.name}"
        for feature in FEATURE_SET.build(FEATURES)
        for output in feature.outputs
    )


def test_metadata_records_the_feature_specs_with_every_parameter(
    trained: ModelRepository,
) -> None:
    feature_spec = trained.open("aligned").metadata["feature_spec"]
    assert feature_spec["feature_set"] == {
        "specs": [
            {"name": "book_imbalance", "version": 1, "params": {"depths": [1, 5, 10]}},
            {"name": "ofi", "version": 1, "params": {"window": 100}},
            {"name": "trade_flow", "version": 1, "params": {"window": 100}},
        ],
        "bar_interval_ns": 0,
    }
    assert msgspec.convert(feature_spec["feature_set"], FeatureSet) == FEATURE_SET
    assert feature_spec["columns"] == list(series_columns())


def test_eval_rebuilds_the_features_from_the_stored_spec(
    trained: ModelRepository,
    series: BookSeries,
    live: tuple[list[MarketEvent], list[FeatureVector]],
) -> None:
    _, vectors = live
    version = trained.open("aligned")
    result = evaluate_version(
        "aligned", [BUNDLED_BTC], VENUE, repository=trained, registry=FEATURES
    )
    samples = sample_indices(series, WINDOW, HORIZON)
    regression = LogisticRegression.from_json(version.metadata["baselines"]["logistic_regression"])
    predicted = regression.predict(np.asarray([vectors[int(event)].floats() for event in samples]))
    truth = direction_labels(series.mid_x2, HORIZON, 0.0)[samples]
    assert result["baselines"]["logistic_regression"] == classification_report(truth, predicted)


def test_eval_refuses_a_version_without_a_recorded_feature_set(
    trained: ModelRepository, tmp_path: Path
) -> None:
    import json
    import shutil

    copy = ModelRepository(tmp_path / "repository")
    folder = copy.root / "aligned" / "1"
    shutil.copytree(trained.root / "aligned" / "1", folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["feature_spec"]["feature_set"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"no feature_spec\.feature_set"):
        evaluate_version("aligned", [BUNDLED_BTC], VENUE, repository=copy, registry=FEATURES)
