"""tradekernel train and models eval end to end on the bundled real Binance data (tiny model)."""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from contextlib import redirect_stdout
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="training needs the train extra: pip install -e 'plugins/tradekernel-models[train]'",
)

from kernel.cli import main  # noqa: E402
from kernel.models.dataset import load_book_series, sample_indices, windows  # noqa: E402
from kernel.models.normalisation import Normalisation  # noqa: E402
from kernel.models.repository import ModelRepository  # noqa: E402
from models.reference import BUNDLED_BTC, reference_labels  # noqa: E402
from models.tiny import tiny_config  # noqa: E402
from tradekernel_sdk.features import FeatureReference  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY_CONFIG = tiny_config(epochs=3, patience=2)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("training")
    config = folder / "tiny.toml"
    config.write_text(TINY_CONFIG)
    started = time.perf_counter()
    status, output = run_cli("train", "--config", str(config))
    return {
        "status": status,
        "output": output,
        "seconds": time.perf_counter() - started,
        "repository": ModelRepository(folder / "repository"),
    }


def test_training_stores_a_version_with_model_metadata_and_report(trained: dict[str, Any]) -> None:
    assert trained["status"] == 0, trained["output"]
    version = trained["repository"].open("tiny")
    assert version.version == 1
    assert version.model_path.read_bytes()[:2]  # not empty
    report = version.path / "report"
    for picture in ("training_curves.png", "confusion_matrix.png"):
        assert (report / picture).read_bytes().startswith(PNG_SIGNATURE)
    page = (report / "report.html").read_text()
    assert "training_curves.png" in page and "confusion_matrix.png" in page
    assert "persistence" in page and "logistic_regression" in page


def test_metadata_describes_inputs_labels_data_and_code(trained: dict[str, Any]) -> None:
    metadata = trained["repository"].open("tiny").metadata
    assert metadata["input"]["shape"] == [None, 20, 40]
    assert metadata["input"]["columns"][:4] == [
        "ask_price_1",
        "ask_size_1",
        "bid_price_1",
        "bid_size_1",
    ]
    assert metadata["label"]["horizon"] == 10 and metadata["label"]["threshold"] == 0.0
    assert [output["name"] for output in metadata["outputs"]] == [
        "direction_probabilities",
        "volatility_bps",
    ]
    assert (
        metadata["data"][0]["sha256"]
        == __import__("hashlib").sha256(BUNDLED_BTC.read_bytes()).hexdigest()
    )
    assert metadata["code_version"]
    assert metadata["onnx"]["opset"] == 17
    reference = msgspec.convert(metadata["feature_reference"], FeatureReference)
    imbalance = reference.columns["book_imbalance.imbalance_1"]
    assert sum(imbalance.bin_counts) == imbalance.count == reference.rows > 0
    assert len(imbalance.bin_counts) == len(imbalance.bin_edges) + 1
    assert set(reference.columns) >= {"input.ask_price_1", "input.bid_size_10"}


def test_onnx_reproduces_torch_within_the_stated_tolerance(trained: dict[str, Any]) -> None:
    parity = trained["repository"].open("tiny").metadata["parity"]
    assert parity["passed"] and parity["samples"] > 0
    assert parity["max_probability_difference"] <= parity["tolerance"] == 1e-4
    assert parity["max_volatility_relative_difference"] <= parity["tolerance"]


def test_every_fold_reports_the_model_against_each_baseline(trained: dict[str, Any]) -> None:
    metrics = trained["repository"].open("tiny").metadata["metrics"]
    assert [fold["fold"] for fold in metrics["folds"]] == [1, 2]
    for figures in [metrics["test"], *(fold["test"] for fold in metrics["folds"])]:
        assert set(figures["baselines"]) == {"majority", "persistence", "logistic_regression"}
        for result in [figures, *figures["baselines"].values()]:
            assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_f1"] <= 1.0
            assert sum(map(sum, result["confusion"])) == result["n"] == figures["n"]


def test_training_the_same_name_again_adds_the_next_version(tmp_path: Path) -> None:
    config = tmp_path / "again.toml"
    config.write_text(
        TINY_CONFIG.replace("epochs = 3", "epochs = 1").replace("folds = 2", "folds = 1")
    )
    assert run_cli("train", "--config", str(config))[0] == 0
    assert run_cli("train", "--config", str(config))[0] == 0
    assert ModelRepository(tmp_path / "repository").versions("tiny") == [1, 2]


def eval_json(repository: ModelRepository, reference: str) -> tuple[int, dict[str, Any]]:
    status, output = run_cli(
        "models", "eval", "--model", reference, "--data", str(BUNDLED_BTC),
        "--venue", "binance", "--repository", str(repository.root), "--json",
    )  # fmt: skip
    return status, json.loads(output) if status == 0 else {}


def test_eval_accuracy_equals_a_recomputation_from_the_onnx_outputs(
    trained: dict[str, Any],
) -> None:
    import onnxruntime

    repository = trained["repository"]
    status, result = eval_json(repository, "tiny:1")
    assert status == 0
    for figures in [result, *result["baselines"].values()]:
        assert {"n", "accuracy", "macro_f1"} <= set(figures)
    assert set(result["baselines"]) == {"majority", "persistence", "logistic_regression"}

    version = repository.open("tiny:1")
    series = load_book_series([BUNDLED_BTC], "binance", "BTCUSDT")
    ends = sample_indices(series, 20, 10)
    inputs = Normalisation.from_json(version.metadata["input"]["normalisation"]).apply(
        windows(series, ends, 20)
    )
    session = onnxruntime.InferenceSession(str(version.model_path))
    probabilities = session.run(["direction_probabilities"], {"book": inputs})[0]
    labels = reference_labels([int(m) for m in series.mid_x2], 10, Fraction(0))
    truth = np.asarray(labels)[ends]
    assert result["n"] == len(ends)
    assert result["accuracy"] == float((probabilities.argmax(axis=1) == truth).mean())


def test_a_damaged_model_file_is_refused_with_the_reason(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    copy = ModelRepository(tmp_path / "repository")
    shutil.copytree(trained["repository"].root / "tiny" / "1", copy.root / "tiny" / "1")
    model = copy.root / "tiny" / "1" / "model.onnx"
    damaged = bytearray(model.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    model.write_bytes(bytes(damaged))
    errors = io.StringIO()
    sys_stderr, sys.stderr = sys.stderr, errors
    try:
        status, _ = eval_json(copy, "tiny")
    finally:
        sys.stderr = sys_stderr
    assert status == 1
    assert "damaged or was replaced" in errors.getvalue()


def test_a_model_file_onnxruntime_cannot_read_is_refused(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    from kernel.models.dataset import file_sha256
    from kernel.models.evaluate import OnnxModel
    from kernel.models.repository import ModelFileError

    copy = ModelRepository(tmp_path / "repository")
    folder = copy.root / "tiny" / "1"
    shutil.copytree(trained["repository"].root / "tiny" / "1", folder)
    (folder / "model.onnx").write_bytes(b"not an onnx graph")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["model_sha256"] = file_sha256(folder / "model.onnx")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelFileError, match="onnxruntime cannot load it"):
        OnnxModel(copy.open("tiny:1"))


def test_an_unknown_version_names_the_ones_there(trained: dict[str, Any]) -> None:
    from kernel.models.repository import ModelFileError

    with pytest.raises(ModelFileError, match=r"no version 7 .*versions: 1"):
        trained["repository"].open("tiny:7")


def test_a_misspelt_config_field_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(TINY_CONFIG.replace("horizon = 10", "horizn = 10"))
    assert main(["train", "--config", str(config)]) == 2
    assert "horizn" in capsys.readouterr().err


def test_train_without_torch_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["train", "--config", str(tmp_path / "any.toml")]) == 2
    assert "tradekernel-models[train]" in capsys.readouterr().err
