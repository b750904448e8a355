"""The training configuration: one TOML file, every field checked and named on error.

Relative paths (data files, repository, checkpoints, report) are resolved
against the configuration file's folder. See ``docs/models.md`` for the
reference with an example.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

__all__ = [
    "DataConfig",
    "ExportConfig",
    "FeatureChoice",
    "FeaturesConfig",
    "LabelConfig",
    "ModelConfig",
    "SplitsConfig",
    "TrainingConfig",
    "TrainingConfigError",
    "load_training_config",
]


class TrainingConfigError(ValueError):
    """A configuration file that cannot be read or does not fit the schema."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class DataConfig(_Section, frozen=True):
    """Which recordings to read, through which venue's feed, and which book."""

    files: list[str]
    venue: str
    symbol: str | None = None
    """Required when the recordings carry several books."""
    levels: int = 10


class FeatureChoice(_Section, frozen=True):
    """One streaming feature by its registered name, with parameters (defaults when omitted)."""

    name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class FeaturesConfig(_Section, frozen=True):
    """What the network and the baselines see."""

    window: int = 100
    """Book snapshots (events) per input, the paper's 100."""
    normalisation: Literal["zscore", "zscore_mid_relative"] = "zscore"
    feature_set: Literal["imbalance", "default"] = "imbalance"
    """The streaming feature set the logistic-regression baseline and the drift reference read."""
    specs: list[FeatureChoice] = msgspec.field(default_factory=list)
    """Streaming features chosen one by one; when given, they replace ``feature_set``."""
    bar_interval_ns: int = 0
    """Trade bars for the bar features among ``specs`` (0: none)."""


class LabelConfig(_Section, frozen=True):
    """The DeepLOB / FI-2010 label: mean of the next ``horizon`` mids against the current."""

    horizon: int = 10
    threshold: float = 0.0
    """Relative change above which a move is up (below minus it, down)."""


class ModelConfig(_Section, frozen=True):
    """The network's sizes and the weight of its volatility head in the loss."""

    architecture: Literal["deeplob"] = "deeplob"
    conv_channels: int = 16
    inception_channels: int = 32
    lstm_hidden: int = 64
    volatility_weight: float = 0.5
    """Loss = cross-entropy + volatility_weight * MSE of the standardised volatility."""


class SplitsConfig(_Section, frozen=True):
    """Walk-forward folds in time."""

    folds: int = 3
    validation_fraction: float = 0.2


class TrainerConfig(_Section, frozen=True):
    """Optimisation and early stopping."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5
    """Epochs without a better validation loss before stopping."""
    seed: int = 0
    threads: int = 1
    """torch intra-op threads."""
    progress: bool = True
    class_weights: Literal["none", "inverse_frequency"] = "none"
    """Weight each class's cross-entropy by n / (3 n_class), counted on the training part."""


class ExportConfig(_Section, frozen=True):
    """ONNX export and the ONNX-vs-torch parity check."""

    opset: int = 17
    parity_samples: int = 256
    parity_tolerance: float = 1e-4
    """Largest absolute difference allowed on probabilities (relative on volatility)."""


class TrainingConfig(_Section, frozen=True):
    """Everything ``tradekernel train`` needs."""

    name: str
    data: DataConfig
    repository: str = "models"
    checkpoint_dir: str | None = None
    """Defaults to ``<repository>/<name>/.checkpoints``."""
    features: FeaturesConfig = msgspec.field(default_factory=FeaturesConfig)
    label: LabelConfig = msgspec.field(default_factory=LabelConfig)
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    splits: SplitsConfig = msgspec.field(default_factory=SplitsConfig)
    training: TrainerConfig = msgspec.field(default_factory=TrainerConfig)
    export: ExportConfig = msgspec.field(default_factory=ExportConfig)


def load_training_config(path: Path) -> tuple[TrainingConfig, Path]:
    """Read and check ``path``; return the configuration and the folder paths are relative to."""
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise TrainingConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        config = msgspec.convert(table, TrainingConfig)
    except msgspec.ValidationError as error:
        raise TrainingConfigError(f"{path}: {error}") from None
    _check(config)
    return config, path.resolve().parent


def _check(config: TrainingConfig) -> None:
    problems = []
    if config.features.bar_interval_ns < 0:
        problems.append("features.bar_interval_ns must not be negative")
    if config.features.window < 4:
        problems.append("features.window must be at least 4")
    if config.label.horizon < 1:
        problems.append("label.horizon must be at least 1")
    if config.label.threshold < 0:
        problems.append("label.threshold must not be negative")
    if not config.data.files:
        problems.append("data.files must name at least one recording")
    if config.training.epochs < 1 or config.training.batch_size < 1:
        problems.append("training.epochs and training.batch_size must be positive")
    if problems:
        raise TrainingConfigError("; ".join(problems))
