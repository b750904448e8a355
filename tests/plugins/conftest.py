"""Fixtures for the plug-in host tests: plug-in modules written on the fly."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_writer import PluginModules

# The SDK's opt-in fixtures; plug-in authors get them with `pytest -p tradekernel_sdk.testing`.
from tradekernel_sdk.testing import plugin_registrations, strategy_harness

__all__ = ["plugin_registrations", "strategy_harness"]


@pytest.fixture
def plugin_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginModules]:
    """Return a writer of plug-in modules; they are forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = PluginModules(tmp_path)
    yield modules
    for module in modules.modules:
        sys.modules.pop(module, None)
