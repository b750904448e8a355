"""Fixtures for the OKX tests: the bundled capture as frames, and its instrument catalog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import kernel
from kernel.adapters.base import RawFrame
from kernel.adapters.okx import load_okx_instruments
from kernel.recording import open_frames
from tradekernel_sdk.types import Instrument

BUNDLED = Path(kernel.__file__).parent / "data" / "okx_v5"


def read_okx_capture(path: Path) -> list[RawFrame]:
    """Return the received frames of a cryptofeed text capture, through the shared reader."""
    return list(open_frames(path))


@pytest.fixture(scope="session")
def okx_reader() -> Callable[[Path], list[RawFrame]]:
    """Return the capture reader, for tests that read another copy of the data."""
    return read_okx_capture


@pytest.fixture(scope="session")
def okx_frames() -> list[RawFrame]:
    """Return the received frames of the bundled OKX capture."""
    return read_okx_capture(BUNDLED / "OKX.ws.1.0.gz")


@pytest.fixture(scope="session")
def okx_catalog() -> dict[str, Instrument]:
    """Return the instruments of the bundled OKX REST capture."""
    return load_okx_instruments(BUNDLED / "OKX.0.gz")


@pytest.fixture
def shared_okx_dir(shared_data: Path) -> Path:
    """Return the shared OKX capture folder (the test is skipped when it is absent)."""
    return shared_data / "orderbook" / "okx_v5"
