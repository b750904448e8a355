"""Walk-forward splits: time order, no label horizon crossing a boundary."""

from __future__ import annotations

import numpy as np
import pytest

from tradekernel_models.training.splits import walk_forward_splits


@pytest.mark.parametrize("folds", [1, 2, 3, 5])
@pytest.mark.parametrize("horizon", [1, 10, 50])
def test_every_train_and_validation_label_ends_before_the_next_part(
    folds: int, horizon: int
) -> None:
    # Event indices with a hole, as a resynchronised book leaves.
    samples = np.concatenate((np.arange(99, 1500), np.arange(1700, 4000))).astype(np.int64)
    splits = walk_forward_splits(samples, folds, horizon, validation_fraction=0.2)
    assert [split.fold for split in splits] == list(range(1, folds + 1))
    for split in splits:
        assert split.train.max() < split.validation.min()
        assert split.validation.max() < split.test.min()
        assert split.train.max() + horizon < split.validation.min()
        assert split.validation.max() + horizon < split.test.min()
        assert np.all(np.diff(split.train) > 0) and np.all(np.diff(split.test) > 0)


def test_test_parts_follow_each_other_and_cover_all_but_the_first_block() -> None:
    samples = np.arange(0, 1000, dtype=np.int64)
    splits = walk_forward_splits(samples, 3, 5, 0.25)
    tests = np.concatenate([split.test for split in splits])
    assert tests.tolist() == list(range(250, 1000))
    assert splits[0].train.min() == 0 and splits[2].train.size > splits[0].train.size


def test_too_little_data_is_refused_with_the_counts() -> None:
    with pytest.raises(ValueError, match="fold 1 has"):
        walk_forward_splits(np.arange(12, dtype=np.int64), 3, 10, 0.2)


def test_unordered_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        walk_forward_splits(np.array([3, 2, 1], dtype=np.int64), 1, 1, 0.2)
