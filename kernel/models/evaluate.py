"""Score a stored model version on a recording, with onnxruntime only.

The inputs, labels and baselines are rebuilt from the version's
``metadata.json`` exactly as training built them, so a figure from eval and
one from the training report mean the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from kernel.models.baselines import (
    LogisticRegression,
    persistence_predictions,
)
from kernel.models.dataset import (
    BookSeries,
    describe_files,
    direction_labels,
    load_book_series,
    realised_volatility_bps,
    sample_indices,
    windows,
)
from kernel.models.features import feature_set_from_metadata, registered_features
from kernel.models.metrics import classification_report, regression_report
from kernel.models.normalisation import Normalisation
from kernel.models.repository import ModelFileError, ModelRepository, ModelVersion
from tradekernel_sdk.features import Feature

__all__ = ["OnnxModel", "Predictor", "evaluate_series", "evaluate_version"]

BATCH: Final = 512

Predictor = Callable[
    [npt.NDArray[np.float32]], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
]
"""Normalised windows ``[batch, window, columns]`` → (class probabilities, volatility)."""


class OnnxModel:
    """A stored version's ONNX graph in an onnxruntime session, checked against its metadata."""

    def __init__(self, version: ModelVersion, *, threads: int = 1) -> None:
        """Open a session with ``threads`` intra-op threads; refuse a graph unlike its metadata."""
        # Imported here: the kernel's other commands never pay for loading onnxruntime.
        import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(version.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise ModelFileError(
                f"{version.model_path}: onnxruntime cannot load it: {error}"
            ) from None
        schema = version.metadata["input"]
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != schema["name"]:
            found = [item.name for item in inputs]
            raise ModelFileError(
                f"{version.model_path}: inputs {found}, metadata says {schema['name']!r}"
            )
        expected_shape = schema["shape"][1:]
        if list(inputs[0].shape[1:]) != expected_shape:
            raise ModelFileError(
                f"{version.model_path}: input shape {inputs[0].shape}, "
                f"metadata says {schema['shape']}"
            )
        self.input_name = inputs[0].name
        self.output_names = [output["name"] for output in version.metadata["outputs"]]
        found_outputs = sorted(output.name for output in self.session.get_outputs())
        if found_outputs != sorted(self.output_names):
            raise ModelFileError(
                f"{version.model_path}: outputs {found_outputs}, metadata says {self.output_names}"
            )

    def __call__(
        self, inputs: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        probabilities, volatility = self.session.run(self.output_names, {self.input_name: inputs})
        return np.asarray(probabilities), np.asarray(volatility)


def evaluate_series(
    metadata: dict[str, Any],
    series: BookSeries,
    predict: Predictor,
    ends: npt.NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Return the model's and every baseline's figures on ``series``.

    ``ends`` chooses the samples (events ending a window); all of them by default.
    ``series`` must carry the features of the version's feature set.
    """
    features = metadata["input"]
    label = metadata["label"]
    window = int(features["window"])
    horizon = int(label["horizon"])
    threshold = float(label["threshold"])
    normalisation = Normalisation.from_json(features["normalisation"])
    if ends is None:
        ends = sample_indices(series, window, horizon)
    if ends.size == 0:
        raise ValueError(
            f"the data has {len(series)} events of {series.symbol}: too few for a window of "
            f"{window} and a horizon of {horizon}"
        )
    labels = direction_labels(series.mid_x2, horizon, threshold)
    truth = labels[ends]
    volatility_truth = realised_volatility_bps(series.mid_x2, horizon)[ends]
    probabilities = []
    volatility = []
    for start in range(0, ends.size, BATCH):
        batch = ends[start : start + BATCH]
        batch_probabilities, batch_volatility = predict(
            normalisation.apply(windows(series, batch, window))
        )
        probabilities.append(batch_probabilities)
        volatility.append(batch_volatility.reshape(-1))
    predicted = np.concatenate(probabilities).argmax(axis=1).astype(np.int64)
    volatility_predicted = np.concatenate(volatility).astype(np.float64)

    baselines = metadata["baselines"]
    majority = int(baselines["majority"]["class"])
    regression = LogisticRegression.from_json(baselines["logistic_regression"])
    if regression.columns != series.features.columns:
        raise ValueError(
            f"the logistic-regression baseline reads {list(regression.columns)}, "
            f"the data was given {list(series.features.columns)}"
        )
    result = classification_report(truth, predicted)
    result["baselines"] = {
        "majority": classification_report(truth, np.full_like(truth, majority)),
        "persistence": classification_report(
            truth, persistence_predictions(series, labels, ends, horizon, majority)
        ),
        "logistic_regression": classification_report(
            truth, regression.predict(series.feature_floats(ends))
        ),
    }
    training_mean = float(baselines["volatility_mean"])
    earlier = realised_volatility_bps(series.mid_x2, horizon)[np.maximum(ends - horizon, 0)]
    earlier = np.where((ends >= horizon) & np.isfinite(earlier), earlier, training_mean)
    result["volatility_bps"] = {
        "model": regression_report(volatility_truth, volatility_predicted),
        "training_mean": regression_report(
            volatility_truth, np.full_like(volatility_truth, training_mean)
        ),
        "persistence": regression_report(volatility_truth, earlier),
    }
    return result


def evaluate_version(
    reference: str,
    files: Sequence[Path],
    venue: str,
    *,
    symbol: str | None = None,
    repository: ModelRepository | None = None,
    registry: Mapping[str, type[Feature]] | None = None,
) -> dict[str, Any]:
    """Score ``NAME[:VERSION]`` on the recordings ``files``; return the JSON-ready figures.

    The features are rebuilt from the version's stored feature set with the
    classes of ``registry`` (by default those the enabled plug-ins register).
    """
    version = (repository or ModelRepository()).open(reference)
    model = OnnxModel(version)
    metadata = version.metadata
    symbol = symbol or metadata.get("symbol")
    series = load_book_series(
        files,
        venue,
        symbol,
        levels=int(metadata["input"]["levels"]),
        feature_set=feature_set_from_metadata(metadata),
        registry=registered_features() if registry is None else registry,
    )
    figures = evaluate_series(metadata, series, model)
    return {
        "model": version.name,
        "version": version.version,
        "venue": venue,
        "symbol": series.symbol,
        "events": len(series),
        "data": describe_files(files),
        **figures,
    }
