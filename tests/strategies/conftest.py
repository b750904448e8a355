"""Fixtures for the strategies of ``plugins/tradekernel-strategies``, tested from source.

``tradekernel_strategies`` is imported from ``plugins/tradekernel-strategies/src``
unless the distribution is installed. The SDK's ``strategy_harness`` and
``plugin_registrations`` fixtures are imported here rather than enabled with
``pytest_plugins``, which pytest allows only in the top-level conftest.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tradekernel_sdk.testing import plugin_registrations, strategy_harness

__all__ = ["plugin_registrations", "strategy_harness"]

if importlib.util.find_spec("tradekernel_strategies") is None:
    _SOURCE = Path(__file__).resolve().parents[2] / "plugins" / "tradekernel-strategies" / "src"
    sys.path.insert(0, str(_SOURCE))
