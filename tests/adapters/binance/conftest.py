"""Fixtures for the Binance feed tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from binance_frames import load

from kernel.adapters.base import RawFrame


@pytest.fixture
def spot_btc(bundled_data: Path) -> list[RawFrame]:
    """The bundled real BTCUSDT spot slice: diffs, bookTickers, trades and one snapshot."""
    return load([bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz"])
