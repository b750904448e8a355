"""Walk-forward splits in time: train on the past, validate on the recent past, test on the future.

Samples are the events that end an input window, in time order. They are cut
into ``folds + 1`` consecutive blocks; fold ``f`` (1-based) tests on block
``f`` and learns from every block before it, its last ``validation_fraction``
held out for early stopping. Nothing is shuffled across time.

A sample's label reads the ``horizon`` mids after it, so a sample just before
a boundary would see into the next part. Such samples are purged: every
training sample ``t`` has ``t + horizon`` before the first validation sample,
and every validation sample has it before the first test sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Split", "walk_forward_splits"]


@dataclass(frozen=True)
class Split:
    """The event indices of one fold's training, validation and test samples."""

    fold: int
    train: npt.NDArray[np.int64]
    validation: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]


def _before(samples: npt.NDArray[np.int64], boundary: int, horizon: int) -> npt.NDArray[np.int64]:
    """Keep the samples whose label horizon ends before ``boundary``."""
    kept: npt.NDArray[np.int64] = samples[samples + horizon < boundary]
    return kept


def walk_forward_splits(
    samples: npt.NDArray[np.int64], folds: int, horizon: int, validation_fraction: float
) -> list[Split]:
    """Return ``folds`` expanding-window splits of the time-ordered ``samples``."""
    if folds < 1:
        raise ValueError("splits.folds must be at least 1")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError("splits.validation_fraction must be between 0 and 1")
    if np.any(np.diff(samples) <= 0):
        raise ValueError("samples must be strictly increasing event indices")
    blocks = np.array_split(samples, folds + 1)
    splits = []
    for fold in range(1, folds + 1):
        test = blocks[fold]
        history = np.concatenate(blocks[:fold])
        cut = round(history.size * (1.0 - validation_fraction))
        validation = _before(history[cut:], int(test[0]), horizon)
        train = _before(
            history[:cut], int(validation[0]) if validation.size else int(test[0]), horizon
        )
        if train.size == 0 or validation.size == 0 or test.size == 0:
            raise ValueError(
                f"fold {fold} has {train.size} training, {validation.size} validation and "
                f"{test.size} test samples: use more data, fewer folds or a shorter horizon"
            )
        splits.append(Split(fold, train, validation, test))
    return splits
