"""Retraining a stored version on recent recordings: the next version, the source's settings.

Real trainings of the tiny network on the bundled BTCUSDT slice, rewritten as
a recording folder; the kernel side never imports torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kernel.cli import main
from kernel.models.repository import ModelRepository
from kernel.models.retrain import (
    RetrainConfigError,
    RetrainError,
    derive_config,
    recent_recordings,
    retrain,
    to_toml,
)
from models.retraining import BTC, TORCH_MISSING, train_tiny, write_recordings
from serving.support import write_book_version

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason=TORCH_MISSING)

# What a retraining replaces; everything else in training_config is the source's.
REPLACED = {"repository", "checkpoint_dir"}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``tiny:1``, trained on the bundled file, and a recording folder of the same market."""
    if not HAS_TORCH:
        pytest.skip(TORCH_MISSING)
    folder = tmp_path_factory.mktemp("retrain")
    root = train_tiny(folder)
    newest = write_recordings(folder / "recordings")
    return {"folder": folder, "root": root, "recordings": folder / "recordings", "newest": newest}


@needs_torch
def test_retraining_stores_the_next_version_with_the_sources_settings_and_the_new_data(
    source: dict[str, Any],
) -> None:
    # Run as the kernel would: in a process that must never import torch.
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kernel.models.repository import ModelRepository\n"
        "from kernel.models.retrain import recent_recordings, retrain\n"
        "files = recent_recordings(Path(sys.argv[2]), last=2)\n"
        "result = retrain('tiny:1', files, ModelRepository(sys.argv[1]))\n"
        "print(json.dumps({'version': result.version.version, 'same_data': result.same_data,\n"
        "    'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(source["root"]), str(source["recordings"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"version": 2, "same_data": False, "torch": False}

    repository = ModelRepository(source["root"])
    old, new = repository.open("tiny:1").metadata, repository.open("tiny:2").metadata
    assert new["version"] == 2 and new["name"] == "tiny"
    for field in ("venue", "symbol", "input", "label", "feature_spec", "model", "onnx"):
        if field == "input":
            assert {k: v for k, v in new[field].items() if k != "normalisation"} == {
                k: v for k, v in old[field].items() if k != "normalisation"
            }
            assert new[field]["normalisation"]["method"] == old[field]["normalisation"]["method"]
        else:
            assert new[field] == old[field], field
    for field in ("folds", "validation_fraction"):
        assert new["splits"][field] == old["splits"][field]
    settings = ("epochs", "batch_size", "learning_rate", "patience", "seed", "class_weights")
    assert {k: new["training"][k] for k in settings} == {k: old["training"][k] for k in settings}
    kept = {k: v for k, v in old["training_config"].items() if k not in REPLACED | {"data"}}
    assert {k: v for k, v in new["training_config"].items() if k in kept} == kept
    # The data: the two newest files of the folder, not the older one, not the source's file.
    assert [entry["path"] for entry in new["data"]] == [str(p) for p in source["newest"]]
    assert [entry["sha256"] for entry in new["data"]] == [sha256(p) for p in source["newest"]]
    assert old["data"][0]["sha256"] == sha256(BTC) not in {e["sha256"] for e in new["data"]}
    # The same frames in other files: the same book events.
    assert new["events"] == old["events"]


@needs_torch
def test_the_command_line_retrains_and_notes_data_the_source_was_trained_on(
    source: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "repository"
    shutil.copytree(source["root"] / "tiny" / "1", root / "tiny" / "1")
    status, out, err = run_cli(
        "models", "retrain", "--model", "tiny:1", "--data", str(BTC), "--repository", str(root)
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"tiny:2 {(root / 'tiny' / '2').resolve()}"
    assert "trained as tiny:1 was, on 1 file(s)" in lines[1]
    assert lines[2] == "note: the data is the same as tiny:1's (identical SHA-256)"
    assert "fold 2: test accuracy" in err  # the training's own report comes through
    assert ModelRepository(root).versions("tiny") == [1, 2]

    status, out, err = run_cli(
        "models",
        "retrain",
        "--model",
        "tiny",
        "--recordings",
        str(source["recordings"]),
        "--last",
        "2",
        "--repository",
        str(root),
        "--json",
    )
    assert status == 0, err
    answer = json.loads(out)
    assert answer["version"] == 3 and answer["source_version"] == 2  # NAME alone: the latest
    assert answer["files"] == [str(p) for p in source["newest"]]
    assert answer["same_data"] is False and answer["stage"] == "stored"


@needs_torch
def test_unreadable_data_fails_with_the_reason_and_stores_nothing(
    source: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "repository"
    shutil.copytree(source["root"] / "tiny" / "1", root / "tiny" / "1")
    garbage = tmp_path / "garbage.tkr"
    garbage.write_bytes(b"\x00\x01 not a recording\n" * 64)
    with pytest.raises(RetrainError, match="unrecognized capture format") as raised:
        retrain("tiny:1", [garbage], ModelRepository(root))
    assert raised.value.exit_status == 1
    status, _, err = run_cli(
        "models", "retrain", "--model", "tiny:1", "--data", str(garbage), "--repository", str(root)
    )
    assert status == 1 and "unrecognized capture format" in err
    # Another venue's capture reads, but gives the model's book nothing to train on.
    okx = Path(BTC).parents[1] / "okx_v5" / "OKX.ws.1.0.gz"
    status, _, err = run_cli(
        "models", "retrain", "--model", "tiny:1", "--data", str(okx), "--repository", str(root)
    )
    assert status == 1 and "training failed: no binance book for BTCUSDT" in err, err
    assert ModelRepository(root).versions("tiny") == [1]


def test_missing_data_and_an_unknown_model_are_refused_before_training(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write_book_version(root, "tiny", "1")
    with pytest.raises(RetrainError, match="no such file"):
        retrain("tiny:1", [tmp_path / "absent.tkr"], ModelRepository(root))
    status, _, err = run_cli(
        "models", "retrain", "--model", "other", "--data", str(BTC), "--repository", str(root)
    )
    assert status == 2 and "no model 'other'" in err
    status, _, err = run_cli(
        "models", "retrain", "--model", "tiny", "--recordings", str(tmp_path / "none"),
        "--repository", str(root),
    )  # fmt: skip
    assert status == 1 and "no such recording folder" in err
    status, _, err = run_cli(
        "models", "retrain", "--model", "tiny", "--data", str(BTC), "--last", "2",
        "--repository", str(root),
    )  # fmt: skip
    assert status == 2 and "--last applies to --recordings" in err


def test_a_version_that_does_not_record_its_configuration_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repository"
    write_book_version(root, "old", "1")  # written without training_config, as before
    with pytest.raises(RetrainConfigError, match="does not record the training configuration"):
        retrain("old:1", [BTC], ModelRepository(root))
    status, _, err = run_cli(
        "models", "retrain", "--model", "old:1", "--data", str(BTC), "--repository", str(root)
    )
    assert status == 2 and "train it again with tradekernel train" in err
    assert ModelRepository(root).versions("old") == [1]


def test_recent_recordings_are_the_newest_files_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for age, name in enumerate(["c.tkr", "a.tkr", "b.tkr", ".partial"]):
        path = folder / name
        path.write_bytes(b"x")
        os.utime(path, (1_700_000_000 + age, 1_700_000_000 + age))
    (folder / "sub").mkdir()
    assert recent_recordings(folder) == [folder / "c.tkr", folder / "a.tkr", folder / "b.tkr"]
    assert recent_recordings(folder, 2) == [folder / "a.tkr", folder / "b.tkr"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RetrainError, match="holds no recording"):
        recent_recordings(empty)


def test_the_derived_configuration_is_what_tradekernel_train_reads_back(tmp_path: Path) -> None:
    pytest.importorskip("tradekernel_models.training.config", reason=TORCH_MISSING)
    from kernel.models.repository import ModelVersion
    from tradekernel_models.training.config import (
        DataConfig,
        FeatureChoice,
        FeaturesConfig,
        TrainingConfig,
        load_training_config,
    )

    recorded = TrainingConfig(
        name="explicit",
        data=DataConfig(files=["/old/a.gz"], venue="binance"),
        features=FeaturesConfig(
            window=30,
            normalisation="zscore_mid_relative",
            specs=[
                FeatureChoice("ofi", {"window": 50}),
                FeatureChoice("book_imbalance", {"depths": [1, 3]}),
            ],
            bar_interval_ns=1_000_000_000,
        ),
    )
    version = ModelVersion(
        "explicit",
        4,
        tmp_path,
        {"symbol": "ETHUSDT", "training_config": msgspec.to_builtins(recorded)},
    )
    new_files = [tmp_path / "r1.tkr", tmp_path / "r 2.tkr"]
    table = derive_config(version, new_files, tmp_path / "models", tmp_path / "checkpoints")
    path = tmp_path / "derived.toml"
    path.write_text(to_toml(table))
    config, _ = load_training_config(path)
    assert config.features == recorded.features
    assert config.data == DataConfig(
        files=[str(p.resolve()) for p in new_files], venue="binance", symbol="ETHUSDT"
    )
    assert config.training.progress is False
    assert config.checkpoint_dir == str(tmp_path / "checkpoints")
    assert (config.label, config.model, config.splits, config.export) == (
        recorded.label,
        recorded.model,
        recorded.splits,
        recorded.export,
    )
