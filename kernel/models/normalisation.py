"""Input normalisation of book windows, fitted on training data and stored in the metadata.

DeepLOB (Zhang, Zohren & Roberts 2019) z-scores each input column with the mean
and standard deviation of *preceding* data (the previous five days on the LSE),
never of the data being normalised. Here the preceding data is the training
part of the walk-forward split: the statistics are fitted there and applied,
unchanged, to validation, test and any later recording.

Two methods:

* ``zscore``: each of the ``4 * levels`` columns z-scored on its own, as in the
  paper. Prices keep their absolute level, so a market that drifts far from
  the training range moves the inputs off-distribution.
* ``zscore_mid_relative``: prices first become basis points from the event's
  mid (``(price - mid) / mid * 1e4``), sizes stay as they are, then every
  column is z-scored. This removes the price level and keeps the shape.

Arithmetic is float64 on the exact integers; only the result is float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["METHODS", "Normalisation", "fit_normalisation"]

METHODS: Final = ("zscore", "zscore_mid_relative")

# A column that never moved in training (a constant size) would divide by zero.
_MIN_STD: Final = 1e-12


def _prepare(book: npt.NDArray[np.int64], method: str) -> npt.NDArray[np.float64]:
    """Return ``[..., columns]`` float64 values before the z-score."""
    values = book.astype(np.float64)
    if method == "zscore_mid_relative":
        mid = (values[..., 0:1] + values[..., 2:3]) / 2.0
        values[..., 0::2] = (values[..., 0::2] - mid) / mid * 1e4
    return values


@dataclass(frozen=True)
class Normalisation:
    """Per-column z-score statistics and the method they were fitted with."""

    method: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, book: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Return ``book`` (``[..., columns]`` exact integers) normalised, float32."""
        values = _prepare(book, self.method)
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return ((values - mean) / std).astype(np.float32)

    def as_json(self) -> dict[str, Any]:
        """Return the statistics as stored in ``metadata.json``."""
        return {"method": self.method, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Normalisation:
        """Rebuild the statistics stored by :meth:`as_json`."""
        method = data["method"]
        if method not in METHODS:
            raise ValueError(f"unknown normalisation {method!r} (known: {', '.join(METHODS)})")
        return cls(method, tuple(map(float, data["mean"])), tuple(map(float, data["std"])))


def fit_normalisation(book: npt.NDArray[np.int64], method: str = "zscore") -> Normalisation:
    """Fit per-column statistics on ``book`` (``[events, columns]``, the training events only)."""
    if method not in METHODS:
        raise ValueError(f"unknown normalisation {method!r} (known: {', '.join(METHODS)})")
    values = _prepare(book, method)
    mean = values.mean(axis=0)
    std = np.maximum(values.std(axis=0), _MIN_STD)
    return Normalisation(method, tuple(mean.tolist()), tuple(std.tolist()))
