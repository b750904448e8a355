"""``tradekernel train`` and ``tradekernel models eval``: the command-line side of model training.

``train`` runs the ``tradekernel-models`` distribution's training pipeline,
which needs its ``train`` extra (torch); it is imported only when the command
runs, and its absence is explained. ``models eval`` needs only onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from kernel.adapters.registry import REPLAY_VENUES

__all__ = [
    "TRAIN_EXTRA_HINT",
    "add_models_eval_command",
    "add_train_command",
    "run_eval",
    "run_train",
]

TRAIN_EXTRA_HINT = (
    "install the training extra: pip install -e 'plugins/tradekernel-models[train]' "
    "(from a checkout) or pip install 'tradekernel-models[train]'"
)


def add_train_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``tradekernel train``."""
    train = commands.add_parser(
        "train",
        help="train a model on recordings and store it in the model repository (needs torch)",
        description="Train the model a TOML file describes on recorded data with walk-forward "
        "splits, export it to ONNX, check parity and store a new version with its report. "
        "See docs/models.md.",
    )
    train.add_argument("--config", required=True, type=Path, help="training configuration (TOML)")


def add_models_eval_command(models: argparse.ArgumentParser) -> None:
    """Add ``eval`` under ``tradekernel models``, beside any subcommands it already has."""
    existing = [
        action for action in models._actions if isinstance(action, argparse._SubParsersAction)
    ]
    if existing:
        subcommands = existing[0]
    else:
        subcommands = models.add_subparsers(dest="models_command", metavar="COMMAND")
    evaluate = subcommands.add_parser(
        "eval",
        help="score a stored model version on recordings, against its baselines (onnxruntime)",
        description="Score NAME[:VERSION] from the model repository on recorded data: "
        "accuracy, macro-F1 and per-class figures, and the same for each baseline.",
    )
    evaluate.add_argument("--model", required=True, metavar="NAME[:VERSION]")
    evaluate.add_argument("--data", nargs="+", required=True, type=Path, metavar="FILE")
    evaluate.add_argument("--venue", required=True, choices=REPLAY_VENUES)
    evaluate.add_argument("--symbol", help="the book to score (default: the model's symbol)")
    evaluate.add_argument(
        "--repository", type=Path, help="model repository (default $TRADEKERNEL_MODELS or ./models)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")


def is_models_eval(args: argparse.Namespace) -> bool:
    """Return whether the parsed command line is ``tradekernel models eval``."""
    return args.command == "models" and getattr(args, "models_command", None) == "eval"


def run_eval(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``tradekernel models eval``; return the exit status (1 on an unusable model or data)."""
    from kernel.models.evaluate import evaluate_version  # noqa: PLC0415 - numpy, onnxruntime
    from kernel.models.repository import ModelFileError, ModelRepository  # noqa: PLC0415

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        result = evaluate_version(
            args.model,
            args.data,
            args.venue,
            symbol=args.symbol,
            repository=ModelRepository(args.repository),
        )
    except (ModelFileError, FileNotFoundError, ValueError) as error:
        print(f"tradekernel models eval: {error}", file=err)
        return 1
    if args.json:
        print(json.dumps(result), file=out)
        return 0
    print(
        f"{result['model']}:{result['version']} on {result['venue']} {result['symbol']}, "
        f"{result['n']:,} samples",
        file=out,
    )
    print(f"{'':<22}{'accuracy':>10}{'macro-F1':>10}", file=out)
    rows = [("model", result), *result["baselines"].items()]
    for name, figures in rows:
        print(f"{name:<22}{figures['accuracy']:>10.4f}{figures['macro_f1']:>10.4f}", file=out)
    return 0


def run_train(args: argparse.Namespace, *, err: TextIO | None = None) -> int:
    """Run ``tradekernel train``; return the exit status."""
    err = err or sys.stderr
    try:
        import torch  # noqa: F401, PLC0415 - only to say clearly when it is missing
    except ImportError:
        print(f"tradekernel train: torch is not installed; {TRAIN_EXTRA_HINT}", file=err)
        return 2
    try:
        from tradekernel_models.training.config import TrainingConfigError  # noqa: PLC0415
        from tradekernel_models.training.pipeline import ParityError, train  # noqa: PLC0415
    except ImportError as error:
        print(f"tradekernel train: {error}; {TRAIN_EXTRA_HINT}", file=err)
        return 2
    try:
        result = train(args.config, log=err)
    except TrainingConfigError as error:
        print(f"tradekernel train: {error}", file=err)
        return 2
    except (ParityError, FileNotFoundError, ValueError) as error:
        print(f"tradekernel train: {error}", file=err)
        return 1
    version = result.version
    print(f"{version.name}:{version.version} {version.path}")
    for path in result.report_files:
        print(f"report {path}")
    return 0
