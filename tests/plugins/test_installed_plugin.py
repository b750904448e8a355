"""A plug-in installed with pip is found through its entry points, like any real one.

The distribution is built from a temporary directory, installed into the
running virtualenv and uninstalled afterwards. Its name is unique per run, and
the host is restricted to it with the allow-list, so other installed plug-ins
do not matter.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata

import orjson
import pytest

from kernel.plugins.cli import plugins_list
from kernel.plugins.manager import ALLOW_ENV, PluginHost, PluginStatus


@dataclass(frozen=True)
class Installed:
    """What the installed test distribution is called."""

    distribution: str
    version: str
    module: str
    future_module: str


PLUGIN_MODULE = '''
"""A test plug-in: one strategy and one risk check."""

from tradekernel_sdk import Strategy, hookimpl

TRADEKERNEL_API = "1.0"


class Spread(Strategy):
    class Config(Strategy.Config, frozen=True):
        max_spread: int = 5


class MaxNotional:
    def __init__(self, limit: int) -> None:
        self.limit = limit


@hookimpl
def register_strategies(register):
    register("spread", Spread)


@hookimpl
def register_risk_checks(register):
    register("max_notional", MaxNotional)
'''

FUTURE_MODULE = '''
"""A test plug-in written for a plug-in API this kernel does not provide."""

from tradekernel_sdk import Strategy, hookimpl

TRADEKERNEL_API = "2.0"


@hookimpl
def register_strategies(register):
    register("from_the_future", Strategy)
'''


def _pip(*arguments: str) -> None:
    """Run pip in the current interpreter offline; fail with its output."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build and install a two-module plug-in distribution; uninstall it afterwards."""
    token = uuid.uuid4().hex[:8]
    package = Installed(
        distribution=f"tk-test-plugin-{token}",
        version="0.3.1",
        module=f"tk_test_installed_{token}",
        future_module=f"tk_test_future_{token}",
    )
    root = tmp_path_factory.mktemp("plugin-package")
    (root / f"{package.module}.py").write_text(PLUGIN_MODULE)
    (root / f"{package.future_module}.py").write_text(FUTURE_MODULE)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{package.distribution}"
            version = "{package.version}"
            dependencies = ["tradekernel-sdk"]

            [project.entry-points.tradekernel]
            spread = "{package.module}"
            future = "{package.future_module}"

            [tool.setuptools]
            py-modules = ["{package.module}", "{package.future_module}"]
            """
        )
    )
    _pip("install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(root))
    importlib.invalidate_caches()
    try:
        yield package
    finally:
        _pip("uninstall", "--quiet", "--yes", package.distribution)
        for module in (package.module, package.future_module):
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


def test_installed_plugin_is_found_through_its_entry_points(installed: Installed) -> None:
    names = {
        entry_point.name
        for entry_point in metadata.entry_points(group="tradekernel")
        if entry_point.dist is not None and entry_point.dist.version == installed.version
    }
    assert {"spread", "future"} <= names

    host = PluginHost(environ={ALLOW_ENV: installed.distribution})

    assert list(host.strategies()) == ["spread"]
    assert list(host.risk_checks()) == ["max_notional"]
    by_name = {info.name: info for info in host.describe()}
    spread = by_name["spread"]
    assert spread.status is PluginStatus.ENABLED
    assert spread.source == "entry point"
    assert spread.module == installed.module
    assert spread.distribution == installed.distribution
    assert spread.version == installed.version
    assert spread.api_version == "1.0"
    assert spread.registers == {"strategies": ("spread",), "risk_checks": ("max_notional",)}


def test_installed_plugin_for_a_newer_api_is_refused_naming_the_versions(
    installed: Installed,
) -> None:
    host = PluginHost(environ={ALLOW_ENV: installed.distribution})
    future = {info.name: info for info in host.describe()}["future"]
    assert future.status is PluginStatus.REFUSED
    assert future.reason == (
        f"plug-in 'future' ({installed.distribution} {installed.version}) targets plug-in "
        "API 2.0, but the kernel provides 1.0 (the major versions must match)"
    )
    assert "from_the_future" not in host.strategies()


def test_installed_plugins_are_listed(installed: Installed) -> None:
    host = PluginHost(environ={ALLOW_ENV: installed.distribution})
    text = plugins_list(host, json=False)
    row = rf"spread\s+enabled\s+{re.escape(installed.distribution)} {installed.version}"
    assert re.search(row, text)
    assert "strategies: spread; risk_checks: max_notional" in text
    # Other installed plug-ins (the first-party ones) are listed as not allowed.
    assert re.search(r"\d+ plug-ins \(1 enabled, (\d+ disabled, )?1 refused\)", text)

    listed = orjson.loads(plugins_list(host, json=True))
    assert listed["api_version"] == "1.0"
    ours = {
        plugin["name"]: plugin["status"]
        for plugin in listed["plugins"]
        if plugin["distribution"] == installed.distribution
    }
    assert ours == {"spread": "enabled", "future": "refused"}
