"""The distribution: its metadata, its entry point and what the entry point registers."""

from __future__ import annotations

import ast
import importlib
import tomllib
from typing import Any

import tradekernel_strategies
from tradekernel_sdk.plugin import API_VERSION, RegistrationKind, check_api_version
from tradekernel_strategies import AvellanedaStoikov, Imbalance, ModelSignal, Momentum

from .support import DISTRIBUTION

PYPROJECT = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = DISTRIBUTION / "src" / "tradekernel_strategies"


def test_metadata_names_the_sdk_as_the_only_dependency() -> None:
    project = PYPROJECT["project"]
    assert (project["name"], project["version"]) == ("tradekernel-strategies", "0.1.0")
    assert project["version"] == tradekernel_strategies.__version__
    assert project["dependencies"] == ["tradekernel-sdk==0.1.0"]
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]
    assert (DISTRIBUTION / project["readme"]).is_file()
    assert (PACKAGE / "py.typed").is_file()


def test_the_entry_point_names_the_module_with_the_hook(plugin_registrations: Any) -> None:
    entry_points = PYPROJECT["project"]["entry-points"]["tradekernel"]
    assert entry_points == {"strategies": "tradekernel_strategies"}
    module = importlib.import_module(entry_points["strategies"])
    assert module is tradekernel_strategies
    check_api_version(module.TRADEKERNEL_API, API_VERSION)
    registered = plugin_registrations(module)
    assert registered[RegistrationKind.STRATEGY] == {
        "imbalance": Imbalance,
        "momentum": Momentum,
        "avellaneda_stoikov": AvellanedaStoikov,
        "model_signal": ModelSignal,
    }
    assert not any(
        items for kind, items in registered.items() if kind is not RegistrationKind.STRATEGY
    )


def test_the_package_imports_the_sdk_and_never_the_kernel() -> None:
    imported: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert "kernel" not in imported
    assert imported <= {
        "__future__",
        "dataclasses",
        "enum",
        "fractions",
        "math",
        "typing",
        "tradekernel_sdk",
        "tradekernel_strategies",
    }
