"""The baselines every model result is reported against.

* **majority**: always the class most frequent in the training labels;
* **persistence**: the last label already observed when predicting at event
  ``t``: the label of ``t - k``, whose horizon ends at ``t`` (the label of
  ``t - 1`` would need mids up to ``t - 1 + k``, not yet known). Where
  ``t - k`` is outside the segment it predicts the majority class;
* **logistic regression** (multinomial, L2) on order-book imbalance at
  depths 1, 3, 5 and 10, fitted on the training samples by full-batch
  gradient descent on standardised features. Its weights are stored in
  ``metadata.json`` so eval reproduces it without refitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernel.models.dataset import BookSeries, imbalance_features

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


@dataclass(frozen=True)
class LogisticRegression:
    """A fitted multinomial logistic regression on standardised imbalance features."""

    depths: tuple[int, ...]
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    weights: tuple[tuple[float, ...], ...]  # [features][classes]
    bias: tuple[float, ...]

    def probabilities(self, book: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Return class probabilities ``[events, 3]`` for book rows ``[events, columns]``."""
        features = imbalance_features(book, self.depths)
        scaled = (features - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)
        logits = scaled @ np.asarray(self.weights) + np.asarray(self.bias)
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        result: npt.NDArray[np.float64] = exponentials / exponentials.sum(axis=1, keepdims=True)
        return result

    def predict(self, book: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Return the most probable class of each book row."""
        classes: npt.NDArray[np.int64] = self.probabilities(book).argmax(axis=1).astype(np.int64)
        return classes

    def as_json(self) -> dict[str, Any]:
        """Return the fitted parameters as stored in ``metadata.json``."""
        return {
            "features": [f"imbalance_{depth}" for depth in self.depths],
            "depths": list(self.depths),
            "feature_mean": list(self.feature_mean),
            "feature_std": list(self.feature_std),
            "weights": [list(row) for row in self.weights],
            "bias": list(self.bias),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticRegression:
        """Rebuild a regression stored by :meth:`as_json`."""
        return cls(
            depths=tuple(int(depth) for depth in data["depths"]),
            feature_mean=tuple(map(float, data["feature_mean"])),
            feature_std=tuple(map(float, data["feature_std"])),
            weights=tuple(tuple(map(float, row)) for row in data["weights"]),
            bias=tuple(map(float, data["bias"])),
        )


def fit_logistic_regression(
    book: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    *,
    depths: tuple[int, ...] = (1, 3, 5, 10),
    l2: float = 1e-3,
    iterations: int = 500,
    learning_rate: float = 0.5,
) -> LogisticRegression:
    """Fit on book rows and their labels; the loss is convex, so plain descent converges."""
    features = imbalance_features(book, depths)
    mean = features.mean(axis=0)
    std = np.maximum(features.std(axis=0), 1e-12)
    scaled = (features - mean) / std
    count, width = scaled.shape
    onehot = np.eye(3)[labels]
    weights = np.zeros((width, 3))
    bias = np.log((onehot.sum(axis=0) + 1.0) / (count + 3.0))
    for _ in range(iterations):
        logits = scaled @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        error = (probabilities - onehot) / count
        weights -= learning_rate * (scaled.T @ error + l2 * weights)
        bias -= learning_rate * error.sum(axis=0)
    return LogisticRegression(
        depths=depths,
        feature_mean=tuple(mean.tolist()),
        feature_std=tuple(std.tolist()),
        weights=tuple(tuple(row) for row in weights.tolist()),
        bias=tuple(bias.tolist()),
    )
