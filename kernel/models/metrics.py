"""Classification and regression figures, in plain numpy so that eval needs no torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from kernel.models.dataset import CLASS_NAMES

__all__ = ["classification_report", "confusion_matrix", "regression_report"]


def confusion_matrix(
    truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], classes: int = 3
) -> npt.NDArray[np.int64]:
    """Return counts ``[true class, predicted class]``."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def classification_report(
    truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Return n, accuracy, macro-F1, per-class precision/recall/F1/support and the confusion.

    A class never predicted has precision 0; one never present has recall 0
    (and counts in the macro average, as scikit-learn's ``zero_division=0``).
    """
    matrix = confusion_matrix(truth, predicted)
    count = int(matrix.sum())
    true_positive = np.diag(matrix).astype(np.float64)
    predicted_totals = matrix.sum(axis=0).astype(np.float64)
    true_totals = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(
        true_positive, predicted_totals, out=np.zeros(3), where=predicted_totals > 0
    )
    recall = np.divide(true_positive, true_totals, out=np.zeros(3), where=true_totals > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(3), where=denominator > 0)
    return {
        "n": count,
        "accuracy": float(true_positive.sum() / count) if count else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(true_totals[index]),
            }
            for index, name in enumerate(CLASS_NAMES)
        },
        "confusion": matrix.tolist(),
    }


def regression_report(
    truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]
) -> dict[str, float]:
    """Return the mean absolute and root-mean-square errors."""
    error = predicted - truth
    return {
        "mae": float(np.abs(error).mean()) if error.size else 0.0,
        "rmse": float(np.sqrt((error**2).mean())) if error.size else 0.0,
    }
