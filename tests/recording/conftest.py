"""Fixtures for the recording tests: bundled and shared capture files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kernel

BUNDLED = Path(kernel.__file__).resolve().parent / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def bundled() -> Path:
    """Return the data folder shipped inside the package (always present)."""
    return BUNDLED


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """Return this folder's synthetic capture files."""
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return ../shared/data (or $TRADEKERNEL_SHARED_DATA); skip when it is absent."""
    env = os.environ.get("TRADEKERNEL_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared recorded data not found at {path} (set TRADEKERNEL_SHARED_DATA)")
    return path
