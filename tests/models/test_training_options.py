"""The training configuration names its streaming features; class weights follow training labels."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs the tradekernel-models train extra")

from kernel.cli import main
from kernel.models.repository import ModelRepository
from models.reference import BUNDLED_BTC
from tradekernel_models.features import FEATURES
from tradekernel_models.training.config import (
    FeatureChoice,
    FeaturesConfig,
    TrainingConfigError,
)
from tradekernel_models.training.pipeline import class_weights, resolve_feature_set
from tradekernel_sdk.features import FeatureSet, FeatureSpec


def test_the_default_is_the_imbalance_set_with_every_parameter_written_out() -> None:
    assert resolve_feature_set(FeaturesConfig(), FEATURES) == FeatureSet(
        (
            FeatureSpec("book_imbalance", 1, {"depths": [1, 5, 10]}),
            FeatureSpec("ofi", 1, {"window": 100}),
            FeatureSpec("trade_flow", 1, {"window": 100}),
        )
    )


def test_features_chosen_one_by_one_replace_the_named_set() -> None:
    chosen = FeaturesConfig(
        specs=[FeatureChoice(name="spread"), FeatureChoice(name="ema", params={"period": 5})],
        bar_interval_ns=1_000_000_000,
    )
    assert resolve_feature_set(chosen, FEATURES) == FeatureSet(
        (FeatureSpec("spread", 1, {}), FeatureSpec("ema", 1, {"period": 5})),
        bar_interval_ns=1_000_000_000,
    )


def test_a_bad_feature_parameter_is_refused_with_the_field() -> None:
    chosen = FeaturesConfig(specs=[FeatureChoice(name="ofi", params={"window": "long"})])
    with pytest.raises(TrainingConfigError, match=r"features: feature 'ofi'.*\$\.window"):
        resolve_feature_set(chosen, FEATURES)


def test_a_config_naming_an_unregistered_feature_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "unknown.toml"
    config.write_text(
        f'name = "unknown"\n[data]\nfiles = ["{BUNDLED_BTC}"]\nvenue = "binance"\n'
        '[[features.specs]]\nname = "imbalence"\n'
    )
    assert main(["train", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "no feature named 'imbalence' is registered" in error
    assert "book_imbalance" in error  # the names that are


def test_class_weights_are_the_inverse_frequency_of_the_training_labels() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    # n / (3 n_c): 6 / 9, 6 / 6, 6 / 3; a balanced part would weigh every class 1.
    np.testing.assert_allclose(class_weights(labels), [2 / 3, 1.0, 2.0], rtol=1e-7)
    # A class absent from the training part gets no weight rather than a division by zero.
    absent = class_weights(np.array([1, 1, 2, 2], dtype=np.int64))
    np.testing.assert_allclose(absent, [0.0, 4 / 6, 4 / 6], rtol=1e-7)


def train_tiny(folder: Path, weighting: str) -> dict[str, Any]:
    """Train a one-epoch tiny model on the bundled slice; return its metadata."""
    folder.mkdir()
    config = folder / "tiny.toml"
    config.write_text(
        f'name = "tiny"\nrepository = "repository"\n'
        f'[data]\nfiles = ["{BUNDLED_BTC}"]\nvenue = "binance"\nsymbol = "BTCUSDT"\n'
        "[features]\nwindow = 20\n"
        "[model]\nconv_channels = 4\ninception_channels = 4\nlstm_hidden = 8\n"
        "[splits]\nfolds = 1\n"
        f'[training]\nepochs = 1\nprogress = false\nclass_weights = "{weighting}"\n'
    )
    with redirect_stdout(io.StringIO()):
        assert main(["train", "--config", str(config)]) == 0
    return ModelRepository(folder / "repository").open("tiny").metadata


def test_class_weighting_changes_the_fitted_network_and_is_recorded(tmp_path: Path) -> None:
    plain = train_tiny(tmp_path / "plain", "none")
    plain_again = train_tiny(tmp_path / "plain-again", "none")
    weighted = train_tiny(tmp_path / "weighted", "inverse_frequency")
    # Training is deterministic, so a different model can only come from the weights.
    assert plain["model_sha256"] == plain_again["model_sha256"]
    assert plain["training"]["class_weights"] == "none"
    assert weighted["training"]["class_weights"] == "inverse_frequency"
    # Same seed, data and splits: only the loss differs, and with it the model.
    assert plain["metrics"]["test"]["n"] == weighted["metrics"]["test"]["n"]
    assert plain["baselines"] == weighted["baselines"]
    assert plain["model_sha256"] != weighted["model_sha256"]
