"""Fixtures for the trading-path tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.adapters.base import RawFrame
from kernel.recording import open_frames


@pytest.fixture(scope="session")
def btc_frames() -> list[RawFrame]:
    """The bundled real BTCUSDT spot slice."""
    path = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
    return list(open_frames(path / "btcusdt_20240808_head12000.gz"))
