"""The baselines every model result is reported against.

* **majority**: always the class most frequent in the training labels;
* **persistence**: the last label already observed when predicting at event
  ``t``: the label of ``t - k``, whose horizon ends at ``t`` (the label of
  ``t - 1`` would need mids up to ``t - 1 + k``, not yet known). Where
  ``t - k`` is outside the segment it predicts the majority class;
* **logistic regression** (multinomial, L2) on the streaming features of the
  training configuration (by default the imbalance set: book imbalance at
  depths 1, 5 and 10, order-flow imbalance, signed trade flow), the rows of
  :attr:`BookSeries.features <kernel.models.dataset.BookSeries>` at each
  sample, fitted on the training samples by full-batch gradient descent on
  standardised features. Its weights are stored in ``metadata.json`` so eval
  reproduces it without refitting.

A feature still undefined at a sample (a window not yet full, a side thinner
than the depth) is read as its training mean, i.e. 0 after standardisation,
so every sample gets a prediction and the baselines score the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernel.models.dataset import BookSeries

__all__ = [
    "LogisticRegression",
    "fit_logistic_regression",
    "majority_class",
    "persistence_predictions",
]


def majority_class(labels: npt.NDArray[np.int64]) -> int:
    """Return the most frequent class (the lowest index on a tie)."""
    return int(np.bincount(labels, minlength=3).argmax())


def persistence_predictions(
    series: BookSeries,
    labels: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    horizon: int,
    fallback: int,
) -> npt.NDArray[np.int64]:
    """Predict each event's label as the label of ``horizon`` events earlier."""
    earlier = ends - horizon
    usable = earlier >= 0
    safe = np.where(usable, earlier, 0)
    usable &= series.segment[safe] == series.segment[ends]
    usable &= labels[safe] >= 0
    return np.where(usable, labels[safe], fallback).astype(np.int64)


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LogisticRegression:
    """A fitted multinomial logistic regression on standardised streaming features."""

    columns: tuple[str, ...]
    """The feature columns it reads (``<feature>.<output>``), in order."""
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    weights: tuple[tuple[float, ...], ...]  # [features][classes]
    bias: tuple[float, ...]

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Return class probabilities ``[samples, 3]`` for feature rows ``[samples, columns]``."""
        scaled = _standardise(features, np.asarray(self.feature_mean), np.asarray(self.feature_std))
        logits = scaled @ np.asarray(self.weights).reshape(len(self.columns), 3) + np.asarray(
            self.bias
        )
        return _softmax(logits)

    def predict(self, features: FloatArray) -> npt.NDArray[np.int64]:
        """Return the most probable class of each feature row."""
        classes: npt.NDArray[np.int64] = self.probabilities(features).argmax(axis=1)
        return classes.astype(np.int64)

    def as_json(self) -> dict[str, Any]:
        """Return the fitted parameters as stored in ``metadata.json``."""
        return {
            "features": list(self.columns),
            "feature_mean": list(self.feature_mean),
            "feature_std": list(self.feature_std),
            "weights": [list(row) for row in self.weights],
            "bias": list(self.bias),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticRegression:
        """Rebuild a regression stored by :meth:`as_json`."""
        if "depths" in data:
            raise ValueError(
                "the logistic-regression baseline was stored on the old imbalance columns; "
                "train the version again to score it on the streaming features"
            )
        return cls(
            columns=tuple(map(str, data["features"])),
            feature_mean=tuple(map(float, data["feature_mean"])),
            feature_std=tuple(map(float, data["feature_std"])),
            weights=tuple(tuple(map(float, row)) for row in data["weights"]),
            bias=tuple(map(float, data["bias"])),
        )


def _standardise(features: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    """Z-score each column; an undefined value (NaN) becomes 0, the training mean."""
    scaled: FloatArray = np.nan_to_num((features - mean) / std, nan=0.0)
    return scaled


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    result: FloatArray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return result


def fit_logistic_regression(
    features: FloatArray,
    labels: npt.NDArray[np.int64],
    *,
    columns: tuple[str, ...],
    l2: float = 1e-3,
    iterations: int = 500,
    learning_rate: float = 0.5,
) -> LogisticRegression:
    """Fit on feature rows ``[samples, columns]`` and their labels by full-batch descent.

    Means and standard deviations are those of the defined training values of
    each column (0 and 1 for a column never defined). The loss is convex, so
    plain descent converges.
    """
    if features.shape != (labels.size, len(columns)):
        raise ValueError(
            f"{features.shape} feature rows for {labels.size} labels and {len(columns)} columns"
        )
    defined = ~np.isnan(features)
    counts = defined.sum(axis=0)
    filled = np.where(defined, features, 0.0)
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(len(columns)), where=counts > 0)
    spread = np.where(defined, features - mean, 0.0)
    variance = np.divide(
        (spread**2).sum(axis=0), counts, out=np.ones(len(columns)), where=counts > 0
    )
    std = np.maximum(np.sqrt(variance), 1e-12)
    scaled = _standardise(features, mean, std)
    count, width = scaled.shape
    onehot = np.eye(3)[labels]
    weights = np.zeros((width, 3))
    bias = np.log((onehot.sum(axis=0) + 1.0) / (count + 3.0))
    for _ in range(iterations):
        probabilities = _softmax(scaled @ weights + bias)
        error = (probabilities - onehot) / count
        weights -= learning_rate * (scaled.T @ error + l2 * weights)
        bias -= learning_rate * error.sum(axis=0)
    return LogisticRegression(
        columns=columns,
        feature_mean=tuple(mean.tolist()),
        feature_std=tuple(std.tolist()),
        weights=tuple(tuple(row) for row in weights.tolist()),
        bias=tuple(bias.tolist()),
    )
