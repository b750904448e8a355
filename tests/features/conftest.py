"""Fixtures of the feature tests: the real recordings, replayed once per session."""

from __future__ import annotations

from pathlib import Path

import kernel

BUNDLED = Path(kernel.__file__).parent / "data" / "binance_spot"
BUNDLED_FILES = {
    "BTCUSDT": BUNDLED / "btcusdt_20240808_head12000.gz",
    "ETHUSDT": BUNDLED / "ethusdt_20240808_head12000.gz",
}
"""The real Binance spot slices shipped with the kernel (about 110 s each)."""
