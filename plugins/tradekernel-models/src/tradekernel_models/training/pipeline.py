"""``tradekernel train``: recordings → walk-forward training → ONNX → a new repository version.

Training runs inside the kernel's command line, so it reads recordings with the
kernel's own verifying feeds (``kernel.models``); the figures it reports are
computed by the same code ``tradekernel models eval`` runs.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from tqdm import tqdm  # type: ignore[import-untyped]

from kernel.models.baselines import fit_logistic_regression, majority_class
from kernel.models.dataset import (
    CLASS_NAMES,
    BookSeries,
    book_columns,
    describe_files,
    direction_labels,
    load_book_series,
    realised_volatility_bps,
    sample_indices,
)
from kernel.models.evaluate import OnnxModel, evaluate_series
from kernel.models.features import explicit_feature_set, registered_features
from kernel.models.normalisation import Normalisation, fit_normalisation
from kernel.models.repository import ModelRepository, ModelVersion
from tradekernel_models.features import DEFAULT_FEATURE_SET, IMBALANCE_FEATURE_SET
from tradekernel_models.models.deeplob import (
    DeepLOB,
    DeepLOBConfig,
    ExportWrapper,
    export_onnx,
)
from tradekernel_models.training.config import (
    FeaturesConfig,
    TrainingConfig,
    TrainingConfigError,
    load_training_config,
)
from tradekernel_models.training.report import write_report
from tradekernel_models.training.splits import Split, walk_forward_splits
from tradekernel_sdk.features import (
    Feature,
    FeatureParamsError,
    FeatureReference,
    FeatureSet,
    FeatureSpec,
    reference_column,
    reference_from_tables,
)

__all__ = [
    "INPUT_NAME",
    "NAMED_FEATURE_SETS",
    "OUTPUT_NAMES",
    "ParityError",
    "TrainingResult",
    "class_weights",
    "feature_reference",
    "recorded_config",
    "resolve_feature_set",
    "train",
]

INPUT_NAME: Final = "book"
OUTPUT_NAMES: Final = ("direction_probabilities", "volatility_bps")

NAMED_FEATURE_SETS: Final = {"imbalance": IMBALANCE_FEATURE_SET, "default": DEFAULT_FEATURE_SET}


class ParityError(RuntimeError):
    """The exported ONNX graph does not reproduce the torch model within the tolerance."""


@dataclass(frozen=True)
class TrainingResult:
    """The stored version and where its report is."""

    version: ModelVersion
    report_files: list[Path]


@dataclass
class _FoldData:
    """One fold's normalised inputs and targets, as tensors."""

    inputs: Tensor  # [events, columns], normalised
    labels: Tensor  # [events]
    volatility: Tensor  # [events], standardised with training statistics
    offsets: Tensor  # [window]

    def batch(self, ends: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        windows = self.inputs[ends[:, None] + self.offsets[None, :]]
        return windows, self.labels[ends], self.volatility[ends]


def _code_version() -> str:
    """Return ``git describe`` of the checkout the kernel runs from, else the package version."""
    import kernel  # noqa: PLC0415 - only to find the checkout

    root = Path(kernel.__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    from importlib.metadata import version  # noqa: PLC0415

    package = f"tradekernel-models {version('tradekernel-models')}"
    return f"git {described} ({package})" if described else package


def recorded_config(config: TrainingConfig, base: Path, files: list[Path]) -> dict[str, Any]:
    """Return ``config`` as plain data with its paths made absolute, for ``metadata.json``."""
    recorded: dict[str, Any] = msgspec.to_builtins(config)
    recorded["data"]["files"] = [str(path) for path in files]
    recorded["repository"] = str((base / config.repository).resolve())
    if config.checkpoint_dir:
        recorded["checkpoint_dir"] = str((base / config.checkpoint_dir).resolve())
    return recorded


def resolve_feature_set(features: FeaturesConfig, registry: dict[str, type[Feature]]) -> FeatureSet:
    """Return the configured streaming feature set with every parameter written out."""
    if features.specs:
        unknown = [choice.name for choice in features.specs if choice.name not in registry]
        if unknown:
            raise TrainingConfigError(
                f"features.specs: no feature named {', '.join(map(repr, unknown))} is registered "
                f"(registered: {', '.join(sorted(registry)) or 'none'})"
            )
        chosen = FeatureSet(
            tuple(
                FeatureSpec(choice.name, registry[choice.name].version, choice.params)
                for choice in features.specs
            ),
            features.bar_interval_ns,
        )
    else:
        chosen = NAMED_FEATURE_SETS[features.feature_set]
    try:
        return explicit_feature_set(chosen, registry)
    except FeatureParamsError as error:
        raise TrainingConfigError(f"features: {error}") from None


def feature_reference(
    series: BookSeries, normalisation: Normalisation, train: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Summarise the training samples' features in the SDK's drift-reference format.

    The streaming feature columns (``<feature>.<output>``) are
    ``reference_from_tables`` of the very rows the baseline was fitted on;
    ``input.<column>`` adds each model input after normalisation, so the
    kernel's drift monitor can compare live values with both.
    """
    streaming = reference_from_tables([series.feature_rows(train)])
    normalised = normalisation.apply(series.book[train]).astype(np.float64)
    inputs = {
        f"input.{name}": reference_column(normalised[:, index].tolist())
        for index, name in enumerate(book_columns(series.levels))
    }
    reference = FeatureReference(
        format=streaming.format, rows=streaming.rows, columns={**streaming.columns, **inputs}
    )
    built: dict[str, Any] = msgspec.to_builtins(reference)
    return built


def class_weights(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Return ``n / (3 n_c)`` per class for the training ``labels``; 0 for an absent class."""
    counts = np.bincount(labels, minlength=len(CLASS_NAMES)).astype(np.float64)
    weights = np.divide(
        labels.size, len(CLASS_NAMES) * counts, out=np.zeros_like(counts), where=counts > 0
    )
    return weights.astype(np.float32)


def _loss(
    model: DeepLOB,
    batch: tuple[Tensor, Tensor, Tensor],
    volatility_weight: float,
    weights: Tensor | None,
) -> tuple[Tensor, Tensor]:
    windows, labels, volatility = batch
    logits, predicted_volatility = model(windows)
    direction = nn.functional.cross_entropy(logits, labels, weight=weights)
    loss = direction + volatility_weight * nn.functional.mse_loss(
        predicted_volatility.squeeze(1), volatility
    )
    return loss, logits


def _evaluate_loss(
    model: DeepLOB, data: _FoldData, ends: Tensor, config: TrainingConfig, weights: Tensor | None
) -> tuple[float, float]:
    """Return the mean loss and the accuracy on ``ends``."""
    model.eval()
    total = 0.0
    correct = 0
    with torch.no_grad():
        for start in range(0, ends.numel(), 512):
            batch = data.batch(ends[start : start + 512])
            loss, logits = _loss(model, batch, config.model.volatility_weight, weights)
            total += float(loss) * batch[1].numel()
            correct += int((logits.argmax(dim=1) == batch[1]).sum())
    return total / ends.numel(), correct / ends.numel()


def _train_fold(
    config: TrainingConfig,
    *,
    series: BookSeries,
    labels: npt.NDArray[np.int64],
    volatility: npt.NDArray[np.float64],
    split: Split,
    folds: int,
    checkpoints: Path,
) -> dict[str, Any]:
    """Fit normalisation, baselines and the network on one fold; return its state and figures."""
    window = config.features.window
    horizon = config.label.horizon
    # Statistics come from the training part only: every row a training window reads.
    normalisation = fit_normalisation(
        series.book[: int(split.train[-1]) + 1], config.features.normalisation
    )
    train_volatility = volatility[split.train]
    volatility_mean = float(train_volatility.mean())
    volatility_std = float(max(train_volatility.std(), 1e-9))
    regression = fit_logistic_regression(
        series.feature_floats(split.train),
        labels[split.train],
        columns=series.features.columns,
    )
    # Weights come from the training part's labels only, like every other statistic.
    weights = (
        torch.from_numpy(class_weights(labels[split.train]))
        if config.training.class_weights == "inverse_frequency"
        else None
    )
    majority = majority_class(labels[split.train])
    standardised = np.nan_to_num((volatility - volatility_mean) / volatility_std)
    data = _FoldData(
        inputs=torch.from_numpy(normalisation.apply(series.book)),
        labels=torch.from_numpy(np.maximum(labels, 0)),
        volatility=torch.from_numpy(standardised.astype(np.float32)),
        offsets=torch.arange(-window + 1, 1),
    )
    model = DeepLOB(
        DeepLOBConfig(
            levels=series.levels,
            conv_channels=config.model.conv_channels,
            inception_channels=config.model.inception_channels,
            lstm_hidden=config.model.lstm_hidden,
        )
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=config.training.learning_rate)
    train_ends = torch.from_numpy(split.train)
    validation_ends = torch.from_numpy(split.validation)
    generator = torch.Generator().manual_seed(config.training.seed + split.fold)
    checkpoint = checkpoints / f"fold-{split.fold}.pt"
    best_loss = float("inf")
    best_epoch = 0
    history: list[dict[str, float]] = []
    batch_size = config.training.batch_size
    for epoch in range(1, config.training.epochs + 1):
        model.train()
        # Minibatches are drawn in random order from the training part only;
        # the parts themselves stay in time order.
        order = train_ends[torch.randperm(train_ends.numel(), generator=generator)]
        running = 0.0
        progress = tqdm(
            range(0, order.numel(), batch_size),
            desc=f"fold {split.fold}/{folds} epoch {epoch}",
            unit="batch",
            leave=False,
            disable=not config.training.progress,
            file=sys.stderr,
        )
        for start in progress:
            batch = data.batch(order[start : start + batch_size])
            loss, _ = _loss(model, batch, config.model.volatility_weight, weights)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            running += float(loss.detach()) * batch[1].numel()
            progress.set_postfix(loss=f"{float(loss.detach()):.4f}")
        validation_loss, validation_accuracy = _evaluate_loss(
            model, data, validation_ends, config, weights
        )
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / order.numel(),
                "validation_loss": validation_loss,
                "validation_accuracy": validation_accuracy,
            }
        )
        if validation_loss < best_loss:
            best_loss, best_epoch = validation_loss, epoch
            torch.save({"epoch": epoch, "state": model.state_dict()}, checkpoint)
        elif epoch - best_epoch >= config.training.patience:
            break
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state"])
    model.eval()
    wrapper = ExportWrapper(model, volatility_mean, volatility_std).eval()
    fold_metadata = {
        "input": {
            "window": window,
            "levels": series.levels,
            "normalisation": normalisation.as_json(),
        },
        "label": {"horizon": horizon, "threshold": config.label.threshold},
        "baselines": {
            "majority": {"class": majority, "name": CLASS_NAMES[majority]},
            "logistic_regression": regression.as_json(),
            "volatility_mean": volatility_mean,
            "volatility_std": volatility_std,
        },
    }

    def predict(
        inputs: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        with torch.no_grad():
            probabilities, predicted = wrapper(torch.from_numpy(inputs))
        return probabilities.numpy(), predicted.numpy()

    return {
        "fold": split.fold,
        "samples": {
            "train": int(split.train.size),
            "validation": int(split.validation.size),
            "test": int(split.test.size),
        },
        "events": {
            "train": [int(split.train[0]), int(split.train[-1])],
            "validation": [int(split.validation[0]), int(split.validation[-1])],
            "test": [int(split.test[0]), int(split.test[-1])],
        },
        "best_epoch": best_epoch,
        "history": history,
        "test": evaluate_series(fold_metadata, series, predict, ends=split.test),
        "wrapper": wrapper,
        "normalisation": normalisation,
        "metadata": fold_metadata,
    }


def _export(wrapper: ExportWrapper, example: Tensor, path: Path, opset: int) -> None:
    export_onnx(
        wrapper, example, path, opset=opset, input_name=INPUT_NAME, output_names=OUTPUT_NAMES
    )


def train(config_path: Path, *, log: TextIO | None = None) -> TrainingResult:
    """Run the whole pipeline for the configuration at ``config_path``."""
    log = log or sys.stderr
    config, base = load_training_config(config_path)
    settings = config.training
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    files = [(base / name).resolve() for name in config.data.files]
    repository = ModelRepository(base / config.repository)
    checkpoints = (
        base / config.checkpoint_dir
        if config.checkpoint_dir
        else repository.root / config.name / ".checkpoints"
    )
    checkpoints.mkdir(parents=True, exist_ok=True)

    registry = registered_features()
    feature_set = resolve_feature_set(config.features, registry)
    series = load_book_series(
        files,
        config.data.venue,
        config.data.symbol,
        config.data.levels,
        feature_set=feature_set,
        registry=registry,
    )
    print(f"{series.symbol}: {len(series):,} book events from {len(files)} file(s)", file=log)
    horizon = config.label.horizon
    labels = direction_labels(series.mid_x2, horizon, config.label.threshold)
    volatility = realised_volatility_bps(series.mid_x2, horizon)
    samples = sample_indices(series, config.features.window, horizon)
    splits = walk_forward_splits(
        samples, config.splits.folds, horizon, config.splits.validation_fraction
    )
    folds = []
    for split in splits:
        fold = _train_fold(
            config,
            series=series,
            labels=labels,
            volatility=volatility,
            split=split,
            folds=len(splits),
            checkpoints=checkpoints,
        )
        test = fold["test"]
        print(
            f"fold {split.fold}: test accuracy/macro-F1 model "
            f"{test['accuracy']:.4f}/{test['macro_f1']:.4f}, "
            + ", ".join(
                f"{name} {figures['accuracy']:.4f}/{figures['macro_f1']:.4f}"
                for name, figures in test["baselines"].items()
            ),
            file=log,
        )
        folds.append(fold)

    final = folds[-1]
    wrapper: ExportWrapper = final["wrapper"]
    normalisation: Normalisation = final["normalisation"]
    staging = Path(tempfile.mkdtemp(prefix=".training-", dir=checkpoints))
    try:
        model_path = staging / "model.onnx"
        window = config.features.window
        columns = 4 * series.levels
        held_out = splits[-1].test[: config.export.parity_samples]
        offsets = np.arange(-window + 1, 1)
        parity_inputs = normalisation.apply(series.book[held_out[:, None] + offsets[None, :]])
        _export(wrapper, torch.from_numpy(parity_inputs[:2]), model_path, config.export.opset)

        metadata: dict[str, Any] = {
            "name": config.name,
            "format_version": 1,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "code_version": _code_version(),
            # The configuration as resolved here, so a retraining can repeat it on new data.
            "training_config": recorded_config(config, base, files),
            "venue": series.venue,
            "symbol": series.symbol,
            "events": len(series),
            "event": "one book update applied and published by the venue feed",
            "model": {
                "architecture": config.model.architecture,
                "conv_channels": config.model.conv_channels,
                "inception_channels": config.model.inception_channels,
                "lstm_hidden": config.model.lstm_hidden,
                "parameters": sum(p.numel() for p in wrapper.model.parameters()),
                "volatility_weight": config.model.volatility_weight,
            },
            "input": {
                "name": INPUT_NAME,
                "dtype": "float32",
                "shape": [None, window, columns],
                "window": window,
                "levels": series.levels,
                "columns": book_columns(series.levels),
                "normalisation": normalisation.as_json(),
            },
            "outputs": [
                {
                    "name": OUTPUT_NAMES[0],
                    "dtype": "float32",
                    "shape": [None, 3],
                    "classes": list(CLASS_NAMES),
                },
                {
                    "name": OUTPUT_NAMES[1],
                    "dtype": "float32",
                    "shape": [None, 1],
                    "unit": "basis points",
                },
            ],
            "feature_spec": {
                "book": {
                    "levels": series.levels,
                    "window": window,
                    "order": "ask price, ask size, bid price, bid size per level",
                },
                # The streaming features the baselines and the drift reference read;
                # eval and serving rebuild them from this with the registered classes.
                "feature_set": msgspec.to_builtins(feature_set),
                "columns": list(series.features.columns),
                "alignment": "sample t reads the feature vector right after book event t, "
                "the last event of its input window",
            },
            "label": {
                "method": "DeepLOB/FI-2010: (mean of next k mids - mid) / mid vs ±threshold",
                "horizon": horizon,
                "threshold": config.label.threshold,
                "classes": list(CLASS_NAMES),
                "volatility": "sqrt of summed squared log mid returns, next k events, bps",
            },
            "data": describe_files(files),
            "splits": {
                "method": "walk-forward, expanding window, purged by the horizon",
                "folds": config.splits.folds,
                "validation_fraction": config.splits.validation_fraction,
                "stored_fold": final["fold"],
                "events": [fold["events"] for fold in folds],
            },
            "training": {
                "epochs": settings.epochs,
                "batch_size": settings.batch_size,
                "learning_rate": settings.learning_rate,
                "patience": settings.patience,
                "seed": settings.seed,
                "class_weights": settings.class_weights,
                "best_epoch": final["best_epoch"],
                "epochs_run": len(final["history"]),
            },
            "baselines": final["metadata"]["baselines"],
            "metrics": {
                "test": final["test"],
                "folds": [
                    {
                        "fold": fold["fold"],
                        "samples": fold["samples"],
                        "best_epoch": fold["best_epoch"],
                        "test": fold["test"],
                    }
                    for fold in folds
                ],
            },
            "feature_reference": feature_reference(series, normalisation, splits[-1].train),
            "onnx": {"opset": config.export.opset, "producer": f"torch {torch.__version__}"},
        }
        parity = _check_parity(
            wrapper, model_path, parity_inputs, metadata, config.export.parity_tolerance
        )
        metadata["parity"] = parity
        report_files = write_report(staging / "report", metadata, folds)
        version = repository.add(config.name, staging, metadata)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"stored {version.name}:{version.version} in {version.path}", file=log)
    return TrainingResult(version, [version.path / "report" / path.name for path in report_files])


def _check_parity(
    wrapper: ExportWrapper,
    model_path: Path,
    inputs: npt.NDArray[np.float32],
    metadata: dict[str, Any],
    tolerance: float,
) -> dict[str, Any]:
    """Run torch and onnxruntime on the same held-out inputs; raise past the tolerance."""
    probe = ModelVersion(metadata.get("name", "candidate"), 0, model_path.parent, metadata)
    session = OnnxModel(probe)
    onnx_probabilities, onnx_volatility = session(inputs)
    with torch.no_grad():
        torch_probabilities, torch_volatility = wrapper(torch.from_numpy(inputs))
    probability_difference = float(np.abs(onnx_probabilities - torch_probabilities.numpy()).max())
    reference = np.maximum(np.abs(torch_volatility.numpy()), 1.0)
    volatility_difference = float(
        (np.abs(onnx_volatility - torch_volatility.numpy()) / reference).max()
    )
    agreement = float(
        (onnx_probabilities.argmax(1) == torch_probabilities.numpy().argmax(1)).mean()
    )
    parity = {
        "samples": int(inputs.shape[0]),
        "tolerance": tolerance,
        "max_probability_difference": probability_difference,
        "max_volatility_relative_difference": volatility_difference,
        "class_agreement": agreement,
        "passed": probability_difference <= tolerance and volatility_difference <= tolerance,
    }
    if not parity["passed"]:
        raise ParityError(
            f"ONNX and torch disagree on {inputs.shape[0]} held-out inputs: probabilities by "
            f"{probability_difference:.3g}, volatility by {volatility_difference:.3g} (relative); "
            f"tolerance {tolerance}"
        )
    return parity
