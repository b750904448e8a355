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
    fallback = "in_process"        # while a production component is down; or "none"
    # classes = ["down", "stationary", "up"]   # for component versions (default: in-process's)

    [[serving.models.components]]  # a version answered out of process
    version = "2"
    component = "deeplob_v2"       # the name of a model component in [[components]]

A component version is loaded (as ``uri = "component:NAME"``) at start when
the registry does not have it yet; then it moves through the stages like any
version (``tradekernel models shadow/canary/promote``).

``version`` (in process) applies only while the journal holds no production
version for the model: after that, what operators did (``tradekernel models
…``) is what a restart restores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from kernel.features.drift import DriftConfig

__all__ = ["ComponentVersionConfig", "ServedModel", "ServingConfig", "parse_serving_config"]


@dataclass(frozen=True)
class ComponentVersionConfig:
    """A version of a served model answered by a component of ``[[components]]``."""

    version: str
    component: str


@dataclass(frozen=True)
class ServedModel:
    """One model the kernel serves, to which instruments, and how."""

    name: str
    instruments: tuple[tuple[str, str], ...] = ()
    """``(venue, symbol)`` pairs; empty: every instrument with a book."""
    version: str = ""
    batching: bool = True
    max_batch: int = 64
    retrain: RetrainSettings | None = None
    """Retraining on recent recordings into shadow (``[serving.models.retrain]``)."""
    components: tuple[ComponentVersionConfig, ...] = ()
    fallback: str = "in_process"
    """What answers while a production component is down: ``in_process`` or ``none``."""
    classes: tuple[str, ...] = ()
    """The classes component versions answer (default: those of the in-process versions)."""


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


def _component_fields(table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Read a served model's ``components``, ``fallback`` and ``classes``."""
    fallback = _string(table, "fallback", "in_process", prefix)
    if fallback not in {"in_process", "none"}:
        raise ValueError(f"{prefix}.fallback: 'in_process' or 'none', got {fallback!r}")
    classes = table.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"{prefix}.classes: a list of class names")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{prefix}.classes: each class once, got {classes}")
    raw = table.get("components", [])
    if not isinstance(raw, list):
        raise ValueError(f"{prefix}.components: an array of tables ([[serving.models.components]])")
    components: list[ComponentVersionConfig] = []
    for index, item in enumerate(raw):
        where = f"{prefix}.components[{index}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a table")
        _check(item, where, {"version", "component"})
        version = _string(item, "version", "", where)
        component = _string(item, "component", "", where)
        for key, value in (("version", version), ("component", component)):
            if not value:
                raise ValueError(f"{where}.{key}: required")
        if any(version == known.version for known in components):
            raise ValueError(f"{where}.version: {version!r} is listed already")
        if any(component == known.component for known in components):
            raise ValueError(f"{where}.component: {component!r} answers for a version already")
        components.append(ComponentVersionConfig(version, component))
    return {"components": tuple(components), "fallback": fallback, "classes": tuple(classes)}


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
        _check(
            table,
            prefix,
            {
                "name",
                "instruments",
                "version",
                "batching",
                "max_batch",
                "retrain",
                "components",
                "fallback",
                "classes",
            },
        )
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
                retrain=parse_retrain_config(table.get("retrain"), base, f"{prefix}.retrain"),
                **_component_fields(table, prefix),
            )
        )
    return ServingConfig(
        enabled=_boolean(raw, "enabled", False, "serving"),
        repository=repository if repository.is_absolute() else base / repository,
        threads=_integer(raw, "threads", 1, "serving", 64),
        levels=_integer(raw, "levels", 10, "serving", 1000),
        models=tuple(models),
    )


@dataclass(frozen=True)
class RetrainSettings:
    """When and on what a served model is trained again; the result goes to shadow, never further.

    ::

        [serving.models.retrain]
        recordings = "recordings"   # the folder tradekernel record writes (relative to the file)
        last = 1                    # its newest N files
        on_drift = true             # when the production version's drift monitor alerts
        min_interval_s = 3600       # the least time between two starts
        every_s = 0                 # also on a timer (0: never)
        niceness = 10               # the training process's lower CPU priority
        timeout_s = 7200            # kill a training that runs longer (0: no limit)
        drift = { psi_threshold = 0.25, ks_threshold = 0.2 }   # DriftConfig fields
    """

    recordings: Path
    enabled: bool = True
    last: int = 1
    on_drift: bool = True
    min_interval_s: float = 3600.0
    every_s: float = 0.0
    niceness: int = 10
    timeout_s: float = 7200.0
    """A training still running after this many seconds is killed and counted as failed."""
    drift: DriftConfig = DriftConfig()  # noqa: RUF009 - frozen, so one shared default is safe


def _seconds(table: Mapping[str, Any], key: str, default: float, prefix: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ValueError(f"{prefix}.{key}: seconds, 0 or more, got {value!r}")
    return float(value)


def parse_retrain_config(raw: Any, base: Path, prefix: str) -> RetrainSettings | None:
    """Validate a served model's ``retrain`` table; None when there is none."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{prefix}: expected a table")
    known = {"enabled", "recordings", "last", "on_drift", "min_interval_s", "every_s"}
    _check(raw, prefix, known | {"niceness", "timeout_s", "drift"})
    recordings = _string(raw, "recordings", "", prefix)
    if not recordings:
        raise ValueError(f"{prefix}.recordings: required (the folder of recent recordings)")
    niceness = raw.get("niceness", 10)
    if isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= 19:
        raise ValueError(f"{prefix}.niceness: an integer from 0 to 19, got {niceness!r}")
    try:
        drift = msgspec.convert(raw.get("drift", {}), DriftConfig)
    except msgspec.ValidationError as error:
        raise ValueError(f"{prefix}.drift: {error}") from None
    folder = Path(recordings)
    settings = RetrainSettings(
        recordings=folder if folder.is_absolute() else base / folder,
        enabled=_boolean(raw, "enabled", True, prefix),
        last=_integer(raw, "last", 1, prefix, 100_000),
        on_drift=_boolean(raw, "on_drift", True, prefix),
        min_interval_s=_seconds(raw, "min_interval_s", 3600.0, prefix),
        every_s=_seconds(raw, "every_s", 0.0, prefix),
        niceness=niceness,
        timeout_s=_seconds(raw, "timeout_s", 7200.0, prefix),
        drift=drift,
    )
    if settings.enabled and not settings.on_drift and not settings.every_s:
        raise ValueError(f"{prefix}: nothing would start it: set on_drift = true or every_s")
    return settings
