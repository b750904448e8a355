"""The ``[serving]`` table of the kernel's configuration.

::

    [serving]
    enabled = true
    repository = "models"          # the model repository (relative to the file)
    threads = 1                    # onnxruntime intra-op threads per session
    levels = 10                    # the deepest book a version may read

    [[serving.models]]
    name = "deeplob_btcusdt"
    instruments = ["binance.BTCUSDT"]   # default: every instrument with a book
    version = "1"                  # at the first start, load and promote it
    batching = true
    max_batch = 64

``version`` applies only while the journal holds no production version for
the model: after that, what operators did (``tradekernel models …``) is what
a restart restores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ServedModel", "ServingConfig", "parse_serving_config"]


@dataclass(frozen=True)
class ServedModel:
    """One model the kernel serves, to which instruments, and how."""

    name: str
    instruments: tuple[tuple[str, str], ...] = ()
    """``(venue, symbol)`` pairs; empty: every instrument with a book."""
    version: str = ""
    batching: bool = True
    max_batch: int = 64


@dataclass(frozen=True)
class ServingConfig:
    """Model serving: off unless ``enabled``."""

    enabled: bool = False
    repository: Path = Path("models")
    threads: int = 1
    levels: int = 10
    models: tuple[ServedModel, ...] = ()


def _check(table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"{prefix}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})"
        )


def _integer(table: Mapping[str, Any], key: str, default: int, prefix: str, top: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise ValueError(f"{prefix}.{key}: an integer from 1 to {top}, got {value!r}")
    return value


def _boolean(table: Mapping[str, Any], key: str, default: bool, prefix: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{prefix}.{key}: expected true or false, got {value!r}")
    return value


def _string(table: Mapping[str, Any], key: str, default: str, prefix: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{prefix}.{key}: expected a string, got {value!r}")
    return value


def parse_serving_config(raw: Any, base: Path) -> ServingConfig:
    """Validate ``[serving]``; a ValueError names the field (``serving.models[0].name: …``)."""
    if raw is None:
        return ServingConfig()
    if not isinstance(raw, Mapping):
        raise ValueError("serving: expected a table")
    _check(raw, "serving", {"enabled", "repository", "threads", "levels", "models"})
    repository = Path(_string(raw, "repository", "models", "serving"))
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list):
        raise ValueError("serving.models: expected an array of tables ([[serving.models]])")
    models: list[ServedModel] = []
    for index, table in enumerate(models_raw):
        prefix = f"serving.models[{index}]"
        if not isinstance(table, Mapping):
            raise ValueError(f"{prefix}: expected a table")
        _check(table, prefix, {"name", "instruments", "version", "batching", "max_batch"})
        name = _string(table, "name", "", prefix)
        if not name:
            raise ValueError(f"{prefix}.name: required")
        if name in {model.name for model in models}:
            raise ValueError(f"{prefix}.name: {name!r} is served already")
        instruments_raw = table.get("instruments", [])
        if not isinstance(instruments_raw, list) or not all(
            isinstance(item, str) and "." in item for item in instruments_raw
        ):
            raise ValueError(f"{prefix}.instruments: a list of venue.symbol names")
        instruments = tuple(
            (venue, symbol)
            for venue, _, symbol in (item.partition(".") for item in instruments_raw)
        )
        models.append(
            ServedModel(
                name=name,
                instruments=instruments,
                version=_string(table, "version", "", prefix),
                batching=_boolean(table, "batching", True, prefix),
                max_batch=_integer(table, "max_batch", 64, prefix, 4096),
            )
        )
    return ServingConfig(
        enabled=_boolean(raw, "enabled", False, "serving"),
        repository=repository if repository.is_absolute() else base / repository,
        threads=_integer(raw, "threads", 1, "serving", 64),
        levels=_integer(raw, "levels", 10, "serving", 1000),
        models=tuple(models),
    )
