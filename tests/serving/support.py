"""Real ONNX models for the serving tests, built with the ``onnx`` helper API (no torch).

A *book model* reads ``[batch, window, 4 * levels]`` normalised book windows:
it averages the window over time, applies a linear layer and a softmax over
three classes (down, stationary, up). The same arithmetic in numpy
(:func:`reference_probabilities`) recomputes every answer a test sees, so a
test can check that the version named on a prediction is the one that made it.
Broken variants reproduce what goes wrong with real files: a graph whose input
shape disagrees with its metadata, one that answers NaN, a damaged file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from kernel.serving.spec import book_column_names

__all__ = [
    "CLASSES",
    "LEVELS",
    "book_metadata",
    "reference_probabilities",
    "weights_for",
    "write_book_version",
]

CLASSES: Final = ("down", "stationary", "up")
LEVELS: Final = 10
COLUMNS: Final = LEVELS * 4
INPUT: Final = "book"
OUTPUTS: Final = ("direction_probabilities", "volatility_bps")


def weights_for(seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return the linear layer of version ``seed``: weights ``[40, 3]`` and bias ``[3]``."""
    generator = np.random.default_rng(seed)
    weights = generator.normal(0.0, 1.0, size=(COLUMNS, len(CLASSES))).astype(np.float32)
    bias = generator.normal(0.0, 0.5, size=len(CLASSES)).astype(np.float32)
    return weights, bias


def normalisation(window_rows: npt.NDArray[np.int64] | None = None) -> dict[str, Any]:
    """Return mid-relative z-score statistics fitting a BTC-like book (prices in bps of mid)."""
    mean = []
    std = []
    for level in range(1, LEVELS + 1):
        mean += [float(level), 1e7, -float(level), 1e7]
        std += [float(level), 1e8, float(level), 1e8]
    return {"method": "zscore_mid_relative", "mean": mean, "std": std}


def book_metadata(window: int, *, classes: tuple[str, ...] = CLASSES) -> dict[str, Any]:
    """Return the metadata ``tradekernel train`` writes, reduced to what serving reads."""
    return {
        "input": {
            "name": INPUT,
            "dtype": "float32",
            "shape": [None, window, COLUMNS],
            "window": window,
            "levels": LEVELS,
            "columns": book_column_names(LEVELS),
            "normalisation": normalisation(),
        },
        "outputs": [
            {"name": OUTPUTS[0], "dtype": "float32", "shape": [None, 3], "classes": list(classes)},
            {"name": OUTPUTS[1], "dtype": "float32", "shape": [None, 1]},
        ],
        "feature_spec": {"book": {"levels": LEVELS, "window": window}},
    }


def book_graph(seed: int, window: int, *, nan: bool = False, opset: int = 18) -> onnx.ModelProto:
    """Return the ONNX graph of a book model over windows of ``window`` events."""
    weights, bias = weights_for(seed)
    if nan:
        bias = np.full_like(bias, np.nan)
    nodes = [
        helper.make_node("ReduceMean", ["book", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUTS[0]], axis=1),
        helper.make_node("ReduceSum", ["pooled", "one_axis"], [OUTPUTS[1]], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        f"book_model_{seed}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", window, COLUMNS])],
        [
            helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info(OUTPUTS[1], TensorProto.FLOAT, ["batch", 1]),
        ],
        initializer=[
            numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.asarray([1], dtype=np.int64), "one_axis"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_book_version(
    root: Path,
    name: str,
    version: str,
    *,
    seed: int | None = None,
    window: int = 5,
    graph_window: int | None = None,
    nan: bool = False,
    model_bytes: bytes | None = None,
) -> Path:
    """Write ``<root>/<name>/<version>/`` with ``model.onnx`` and ``metadata.json``; return it.

    ``graph_window`` builds the graph for another window than the metadata
    says; ``nan`` makes it answer NaN; ``model_bytes`` stores those bytes as
    the model file instead (its hash recorded, so only onnxruntime can refuse it).
    """
    folder = root / name / version
    folder.mkdir(parents=True)
    if model_bytes is None:
        graph = book_graph(int(version) if seed is None else seed, graph_window or window, nan=nan)
        model_bytes = graph.SerializeToString()
    (folder / "model.onnx").write_bytes(model_bytes)
    metadata = book_metadata(window)
    metadata.update(
        name=name,
        version=version,
        model_file="model.onnx",
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
    )
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def reference_probabilities(
    seed: int, window_rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Recompute a book model's answer in numpy from the exact book rows ``[window, 40]``."""
    stats = normalisation()
    values = window_rows.astype(np.float64)
    mid = (values[:, 0:1] + values[:, 2:3]) / 2.0
    values[:, 0::2] = (values[:, 0::2] - mid) / mid * 1e4
    normalised = ((values - np.asarray(stats["mean"])) / np.asarray(stats["std"])).astype(
        np.float32
    )
    weights, bias = weights_for(seed)
    logits = normalised.astype(np.float64).mean(axis=0) @ weights.astype(np.float64) + bias
    exponent = np.exp(logits - logits.max())
    return np.asarray(exponent / exponent.sum())


# ---------------------------------------------------------------------------
# Real data: the bundled Binance recordings, replayed through the verifying feed

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
BUNDLED_FILES: Final = (
    BUNDLED / "btcusdt_20240808_head12000.gz",
    BUNDLED / "ethusdt_20240808_head12000.gz",
)


def bundled_frames(limit: int | None = None) -> list[Any]:
    """Return the bundled BTCUSDT and ETHUSDT frames by receive time (the first ``limit``)."""
    from kernel.recording import merge_frames, open_frames

    frames = []
    for frame in merge_frames(*(open_frames(path) for path in BUNDLED_FILES)):
        frames.append(frame)
        if limit is not None and len(frames) >= limit:
            break
    return frames


class ReferenceRows:
    """The test's own record of each instrument's book rows, built independently of the engine.

    Subscribed to the same bus, it keeps a book per instrument and, after each
    book event, that event's top ``LEVELS`` levels in the training layout;
    ``rows[(venue, symbol)][n - 1]`` is the row after the ``n``-th event.
    """

    def __init__(self, bus: Any) -> None:
        from tradekernel_sdk.features import ReplayBook

        self._book_class = ReplayBook
        self.books: dict[tuple[str, str], Any] = {}
        self.rows: dict[tuple[str, str], list[list[int]]] = {}
        bus.subscribe("data.snapshot.*.*", self._on_book)
        bus.subscribe("data.book.*.*", self._on_book)

    def _on_book(self, update: Any) -> None:
        key = (update.venue, update.symbol)
        book = self.books.setdefault(key, self._book_class())
        book.apply(update)
        asks, bids = book.ask_levels(LEVELS), book.bid_levels(LEVELS)
        row: list[int] = []
        for level in range(LEVELS):
            ask = asks[level] if level < len(asks) else (asks[-1][0] if asks else 0, 0)
            bid = bids[level] if level < len(bids) else (bids[-1][0] if bids else 0, 0)
            row += [ask[0], ask[1], bid[0], bid[1]]
        self.rows.setdefault(key, []).append(row)

    def window(self, key: tuple[str, str], event: int, window: int) -> npt.NDArray[np.int64]:
        """Return the ``window`` rows ending at event number ``event`` (1-based)."""
        return np.asarray(self.rows[key][event - window : event], dtype=np.int64)


# ---------------------------------------------------------------------------
# Feature models: a linear layer and a softmax over streaming feature columns

FEATURE_COLUMNS: Final = (
    "book_imbalance.imbalance_1",
    "book_imbalance.imbalance_5",
    "spread.relative_spread",
    "ofi.ofi",
)


def feature_scaling() -> dict[str, list[float]]:
    """Return z-score statistics of the feature columns, roughly their scale on BTCUSDT."""
    return {"mean": [0.0, 0.0, 0.0001, 0.0], "std": [0.5, 0.5, 0.0001, 2.0]}


def feature_weights(seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return the linear layer of feature version ``seed``."""
    generator = np.random.default_rng(1_000 + seed)
    weights = generator.normal(size=(len(FEATURE_COLUMNS), len(CLASSES))).astype(np.float32)
    return weights, generator.normal(0.0, 0.5, size=len(CLASSES)).astype(np.float32)


def write_feature_version(root: Path, name: str, version: str) -> Path:
    """Write a version reading ``FEATURE_COLUMNS`` from the streaming features."""
    weights, bias = feature_weights(int(version))
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], [OUTPUTS[0]], axis=1),
        ],
        f"feature_model_{version}",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", len(FEATURE_COLUMNS)]
            )
        ],
        [helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = root / name / version
    folder.mkdir(parents=True)
    data = model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    metadata = {
        "name": name,
        "version": version,
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "input": {
            "name": "features",
            "source": "features",
            "dtype": "float32",
            "shape": [None, len(FEATURE_COLUMNS)],
            "columns": list(FEATURE_COLUMNS),
            "normalisation": feature_scaling(),
        },
        "outputs": [{"name": OUTPUTS[0], "shape": [None, 3], "classes": list(CLASSES)}],
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def feature_reference(version: int, values: list[float]) -> npt.NDArray[np.float64]:
    """Recompute a feature version's answer from the raw feature values."""
    scaling = feature_scaling()
    row = (np.asarray(values) - np.asarray(scaling["mean"])) / np.asarray(scaling["std"])
    weights, bias = feature_weights(version)
    logits = row.astype(np.float32).astype(np.float64) @ weights.astype(np.float64) + bias
    exponent = np.exp(logits - logits.max())
    return np.asarray(exponent / exponent.sum())


# ---------------------------------------------------------------------------
# A stored version served as a model component, in its own process


def start_model_component(
    tmp_path: Path,
    folder: Path,
    instruments: list[tuple[str, str]],
    address: str = "127.0.0.1:0",
) -> tuple[Any, str]:
    """Serve ``folder``'s version as a component in a new process; return it and its address."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / f"serve_model_{folder.name}.py"
    script.write_text(
        textwrap.dedent(f"""
        from kernel.serving.remote import ModelComponent
        from tradekernel_sdk.remote import serve

        serve(
            ModelComponent({str(folder)!r}, {instruments!r}),
            address={address!r},
            ready=lambda address: print("listening", address, flush=True),
        )
        """)
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening "), line
    return process, line.split()[1]
