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
    "add_models_retrain_command",
    "add_train_command",
    "is_models_retrain",
    "run_eval",
    "run_retrain",
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_models_retrain_command(models: argparse.ArgumentParser) -> None:
    """Add ``retrain`` under ``tradekernel models``, beside any subcommands it already has."""
    existing = [
        action for action in models._actions if isinstance(action, argparse._SubParsersAction)
    ]
    if existing:
        subcommands = existing[0]
    else:
        subcommands = models.add_subparsers(dest="models_command", metavar="COMMAND")
    retrain = subcommands.add_parser(
        "retrain",
        help="train a stored version again on recent recordings as a new version; with --api "
        "put it in shadow in a running kernel (needs torch)",
        description="Repeat the training of NAME[:VERSION] (its configuration from its "
        "metadata.json) on other recordings and store the result as the next version. With "
        "--api, load it into the running kernel and put it in shadow; it is never promoted. "
        "See docs/models.md.",
    )
    retrain.add_argument(
        "--model",
        required=True,
        metavar="NAME[:VERSION]",
        help="the version to repeat (without VERSION: the kernel's production version with "
        "--api, else the latest stored)",
    )
    data = retrain.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", nargs="+", type=Path, metavar="FILE", help="recordings")
    data.add_argument("--recordings", type=Path, metavar="DIR", help="a recording folder")
    retrain.add_argument(
        "--last", type=_positive, metavar="N", help="with --recordings: its newest N files"
    )
    retrain.add_argument(
        "--repository", type=Path, help="model repository (default $TRADEKERNEL_MODELS or ./models)"
    )
    retrain.add_argument(
        "--api",
        metavar="HOST:PORT",
        help="a running kernel's API: load the new version there and put it in shadow",
    )
    retrain.add_argument(
        "--token", help="bearer token for --api with scope admin (default $TRADEKERNEL_API_TOKEN)"
    )
    retrain.add_argument("--timeout", type=float, default=60.0, help="seconds per API call")
    retrain.add_argument("--ca", metavar="FILE", help="speak TLS to --api, trusting this CA")
    retrain.add_argument("--cert", metavar="FILE", help="client certificate for mutual TLS")
    retrain.add_argument("--key", metavar="FILE", help="the client certificate's key")
    retrain.add_argument("--json", action="store_true", help="print one JSON object")


def is_models_retrain(args: argparse.Namespace) -> bool:
    """Return whether the parsed command line is ``tradekernel models retrain``."""
    return args.command == "models" and getattr(args, "models_command", None) == "retrain"


def run_retrain(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``tradekernel models retrain``; return the exit status (0, 1 or 2, as ``train``)."""
    import os  # noqa: PLC0415

    from kernel.cli_api import CA_ENV, CERT_ENV, KEY_ENV, TOKEN_ENV  # noqa: PLC0415
    from kernel.models.repository import ModelRepository, parse_reference  # noqa: PLC0415
    from kernel.models.retrain import RetrainError, recent_recordings, retrain  # noqa: PLC0415
    from tradekernel_sdk.client import ApiError, KernelClient, TlsFiles  # noqa: PLC0415

    out = out or sys.stdout
    err = err or sys.stderr
    command = "tradekernel models retrain"
    try:
        name, version = parse_reference(args.model)
    except ValueError as error:
        print(f"{command}: --model: {error}", file=err)
        return 2
    if args.last is not None and args.recordings is None:
        print(f"{command}: --last applies to --recordings", file=err)
        return 2
    repository = ModelRepository(args.repository)
    client: KernelClient | None = None
    if args.api:
        token = args.token or os.environ.get(TOKEN_ENV)
        if not token:
            print(f"{command}: --api needs a token: set {TOKEN_ENV} or pass --token", file=err)
            return 2
        ca = args.ca or os.environ.get(CA_ENV)
        cert = args.cert or os.environ.get(CERT_ENV)
        key = args.key or os.environ.get(KEY_ENV)
        if (cert is None) != (key is None):
            print(f"{command}: --cert and --key: give both, or neither", file=err)
            return 2
        try:
            tls = None if ca is None and cert is None else TlsFiles(ca, cert, key)
            client = KernelClient(args.api, token, timeout=args.timeout, tls=tls)
        except ValueError as error:
            print(f"{command}: --api: {error}", file=err)
            return 2
    try:
        reference = args.model
        if client is not None and version is None:
            # Without a version, repeat what the kernel serves.
            serving = [m for m in client.models(name) if m.stage == "production"]
            if serving and serving[0].version.isdigit():
                reference = f"{name}:{serving[0].version}"
        files = args.data if args.data else recent_recordings(args.recordings, args.last)
        result = retrain(reference, files, repository)
    except (RetrainError, ApiError) as error:
        if client is not None:
            client.close()
        if isinstance(error, ApiError):
            print(f"{command}: the kernel at {args.api}: {error}", file=err)
            return 1
        print(f"{command}: {error}", file=err)
        return error.exit_status
    err.write(result.output)
    source, stored = result.source, result.version
    data: dict[str, object] = {
        "model": stored.name,
        "version": stored.version,
        "path": str(stored.path.resolve()),
        "source_version": source.version,
        "files": [str(path) for path in result.files],
        "seconds": round(result.seconds, 3),
        "same_data": result.same_data,
        "stage": "stored",
    }
    lines = [
        f"{stored.name}:{stored.version} {stored.path.resolve()}",
        f"trained as {source.name}:{source.version} was, on {len(result.files)} file(s), "
        f"in {result.seconds:.1f} s",
    ]
    if result.same_data:
        lines.append(
            f"note: the data is the same as {source.name}:{source.version}'s (identical SHA-256)"
        )
    status = 0
    if client is not None:
        label = str(stored.version)
        try:
            with client:
                client.load_model(
                    stored.name,
                    label,
                    str(stored.path.resolve()),
                    str(stored.metadata["model_sha256"]),
                )
                lines.append(f"loaded {stored.name}:{label} into the kernel at {args.api}")
                client.shadow_model(stored.name, label)
                data["stage"] = "shadow"
                production = [
                    m.version for m in client.models(stored.name) if m.stage == "production"
                ]
                lines.append(
                    f"shadow {stored.name}:{label} beside production "
                    f"{production[0] if production else 'none'}; not promoted"
                )
        except ApiError as error:
            lines.append(f"the kernel at {args.api} refused it: {error}")
            data["error"] = str(error)
            status = 1
    if args.json:
        print(json.dumps(data), file=out)
    else:
        for line in lines:
            print(line, file=out)
    return status


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
