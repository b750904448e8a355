"""Shared fixtures: where the bundled and the shared recorded data live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA = ROOT / "kernel" / "data"
SHARED_DATA = Path(os.environ.get("TRADEKERNEL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def bundled_data() -> Path:
    """The real data slice shipped in the repository (always present)."""
    return BUNDLED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The full recordings beside the checkout; the test is skipped when they are absent."""
    if not (SHARED_DATA / "orderbook").is_dir():
        pytest.skip(
            f"shared recorded data not found at {SHARED_DATA} (set TRADEKERNEL_SHARED_DATA)"
        )
    return SHARED_DATA
