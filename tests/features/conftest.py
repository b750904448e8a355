"""Fixtures of the feature tests: the bundled recordings and the SDK's plug-in fixtures.

``tradekernel_models`` is imported from ``plugins/tradekernel-models/src``
unless the distribution is installed. ``plugin_registrations`` is imported here
rather than enabled with ``pytest_plugins``, which pytest allows only in the
top-level conftest.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import kernel
from tradekernel_sdk.testing import plugin_registrations

__all__ = ["BUNDLED_FILES", "plugin_registrations"]

if importlib.util.find_spec("tradekernel_models") is None:
    _SOURCE = Path(__file__).resolve().parents[2] / "plugins" / "tradekernel-models" / "src"
    sys.path.insert(0, str(_SOURCE))

BUNDLED = Path(kernel.__file__).parent / "data" / "binance_spot"
BUNDLED_FILES = {
    "BTCUSDT": BUNDLED / "btcusdt_20240808_head12000.gz",
    "ETHUSDT": BUNDLED / "ethusdt_20240808_head12000.gz",
}
"""The real Binance spot slices shipped with the kernel (about 110 s each)."""
