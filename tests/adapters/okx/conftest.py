"""Fixtures for the OKX tests: the bundled capture as frames, and its instrument catalog."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

import kernel
from kernel.adapters.base import RawFrame
from kernel.adapters.okx import load_okx_instruments
from tradekernel_sdk.types import Instrument

BUNDLED = Path(kernel.__file__).parent / "data" / "okx_v5"
SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "orderbook" / "okx_v5"


def read_okx_capture(path: Path) -> list[RawFrame]:
    """Return the received frames of a cryptofeed text capture (``<epoch_s>: <json>`` lines).

    Sent subscriptions (``<-``) and connection openings (``<->``) are skipped.
    """
    frames = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            head, sep, body = line.partition(": ")
            if not sep or " <- " in head or " <-> " in head:
                continue
            whole, _, frac = head.partition(".")
            recv_ns = int(whole) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
            frames.append(RawFrame(recv_ns, body.rstrip("\n").encode(), str(path)))
    return frames


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


@pytest.fixture(scope="session")
def shared_okx_dir() -> Path:
    """Return ../shared/data/orderbook/okx_v5, skipping the test when it is absent."""
    if not (SHARED / "OKX.ws.1.0.gz").is_file():
        pytest.skip(f"shared OKX data not found at {SHARED} (only present in the dev workspace)")
    return SHARED
