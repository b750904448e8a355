"""Meta-tests that keep the plug-in API honest: every hook typed, documented and exercised."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from kernel.plugins.manager import PluginHost, PluginStatus
from tradekernel_sdk import hookspecs
from tradekernel_sdk.plugin import PROJECT_NAME, RegistrationKind, hookimpl

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent


def hook_names() -> list[str]:
    """Return the names of every hook specification, in file order."""
    marker = f"{PROJECT_NAME}_spec"
    return [
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    ]


def test_there_are_hooks_to_check() -> None:
    assert len(hook_names()) == 9


def test_every_hook_is_documented_under_its_own_heading() -> None:
    headings = set(re.findall(r"^### `?(\w+)`?", GUIDE.read_text(), flags=re.MULTILINE))
    missing = [name for name in hook_names() if name not in headings]
    assert missing == [], f"hooks without a '### name' heading in docs/plugins.md: {missing}"


def test_no_heading_documents_a_hook_that_does_not_exist() -> None:
    headings = re.findall(r"^### `?(\w+)`?", GUIDE.read_text(), flags=re.MULTILINE)
    hooklike = {name for name in headings if name.startswith(("register_", "kernel_"))}
    assert hooklike <= set(hook_names())


def test_every_hook_is_typed_and_has_a_docstring() -> None:
    for name in hook_names():
        function = getattr(hookspecs, name)
        assert inspect.getdoc(function), f"{name} has no docstring"
        signature = inspect.signature(function)
        assert signature.return_annotation == "None", name
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, (name, parameter.name)


def test_every_hook_is_implemented_by_a_test_plugin() -> None:
    sources = "\n".join(path.read_text() for path in TESTS.glob("*.py"))
    untested = [name for name in hook_names() if f"def {name}(" not in sources]
    assert untested == [], f"hooks no test plug-in implements: {untested}"


def test_registration_kinds_match_the_registration_hooks() -> None:
    registration_hooks = {name for name in hook_names() if name.startswith("register_")}
    assert {kind.hook_name for kind in RegistrationKind} == registration_hooks
    for kind in RegistrationKind:
        assert callable(getattr(PluginHost, kind.value)), f"PluginHost lacks {kind.value}()"


class _CallEveryHook:
    """A plug-in implementing every hook and noting each call (add new hooks here)."""

    TRADEKERNEL_API = "1.0"

    def __init__(self) -> None:
        self.called: list[str] = []

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        self.called.append("register_strategies")

    @hookimpl
    def register_models(self, register: Any) -> None:
        self.called.append("register_models")

    @hookimpl
    def register_detectors(self, register: Any) -> None:
        self.called.append("register_detectors")

    @hookimpl
    def register_sentiment_sources(self, register: Any) -> None:
        self.called.append("register_sentiment_sources")

    @hookimpl
    def register_venues(self, register: Any) -> None:
        self.called.append("register_venues")

    @hookimpl
    def register_risk_checks(self, register: Any) -> None:
        self.called.append("register_risk_checks")

    @hookimpl
    def register_features(self, register: Any) -> None:
        self.called.append("register_features")

    @hookimpl
    def kernel_started(self, kernel: Any) -> None:
        self.called.append("kernel_started")

    @hookimpl
    def kernel_stopping(self, kernel: Any) -> None:
        self.called.append("kernel_stopping")


class _Kernel:
    version = "0.1.0"
    api_version = "1.0"
    config_summary: Mapping[str, Any] = {}

    def clock(self) -> int:
        return 0


def test_the_host_calls_every_hook() -> None:
    plugin = _CallEveryHook()

    class EntryPoint:
        name = "every-hook"
        value = "tests:every_hook"
        dist = None

        def load(self) -> object:
            return plugin

    host = PluginHost(entry_points=lambda: [EntryPoint()], environ={})  # type: ignore[list-item]
    host.load()
    host.started(_Kernel())
    host.stopping(_Kernel())

    assert [info.status.value for info in host.describe()] == ["enabled"]
    assert sorted(plugin.called) == sorted(hook_names())


def test_the_guide_example_loads_and_its_tests_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```(\w*)\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    module_source, test_source = [body for language, body in blocks if language == "python"][:2]
    assert "[project.entry-points.tradekernel]" in next(
        body for language, body in blocks if language == "toml"
    )
    (tmp_path / "src" / "tk_imbalance").mkdir(parents=True)
    (tmp_path / "src" / "tk_imbalance" / "__init__.py").write_text(module_source)
    (tmp_path / "test_imbalance.py").write_text(test_source)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delitem(sys.modules, "tk_imbalance", raising=False)

    host = PluginHost(
        entry_points=lambda: [EntryPoint("imbalance", "tk_imbalance", "tradekernel")], environ={}
    )
    assert [info.status for info in host.describe()] == [PluginStatus.ENABLED]
    assert list(host.strategies()) == ["imbalance"]
    assert list(host.risk_checks()) == ["no_weekend_orders"]

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tradekernel_sdk.testing", "-p",
         "no:cacheprovider", "test_imbalance.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sys.modules.pop("tk_imbalance", None)
