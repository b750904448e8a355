"""A plain reference labelling the tests compare the vectorised code with."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from kernel.models.dataset import DOWN, STATIONARY, UP

BUNDLED_BTC = Path(__file__).parents[2] / "kernel/data/binance_spot/btcusdt_20240808_head12000.gz"


def reference_labels(mids: list[int], horizon: int, threshold: Fraction) -> list[int]:
    """Label t by mean(m[t+1..t+k]) against m[t], in exact rationals; -1 where unknown."""
    labels = []
    for t, mid in enumerate(mids):
        if t + horizon >= len(mids):
            labels.append(-1)
            continue
        change = (Fraction(sum(mids[t + 1 : t + horizon + 1]), horizon) - mid) / mid
        labels.append(UP if change > threshold else DOWN if change < -threshold else STATIONARY)
    return labels
