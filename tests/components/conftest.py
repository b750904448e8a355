"""Shared pieces of the component tests: the trading stack, bundled frames, served components."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kernel.adapters.base import RawFrame
from kernel.recording import open_frames

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "trading"))

DATA = HERE.parents[1] / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"


@pytest.fixture(scope="session")
def btc_frames() -> list[RawFrame]:
    """Return the start of the bundled real BTCUSDT spot slice."""
    return list(open_frames(DATA))[:6000]
