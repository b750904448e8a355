"""The exported DeepLOB graph answers as the torch network does, without run-time shape work."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("torch", reason="export needs the tradekernel-models train extra")

import onnx
import onnxruntime  # type: ignore[import-untyped]
import torch

from kernel.models.dataset import load_book_series
from kernel.models.normalisation import fit_normalisation
from models.reference import BUNDLED_BTC
from tradekernel_models.models.deeplob import DeepLOB, DeepLOBConfig, ExportWrapper, export_onnx

WINDOW = 20
OUTPUTS = ("direction_probabilities", "volatility_bps")


@pytest.fixture(scope="module")
def windows() -> npt.NDArray[np.float32]:
    """Normalised windows of the bundled BTCUSDT recording, one every 37 events."""
    series = load_book_series([BUNDLED_BTC], "binance", "BTCUSDT")
    normalisation = fit_normalisation(series.book[:2_000])
    ends = np.arange(WINDOW - 1, len(series), 37)
    return normalisation.apply(series.book[ends[:, None] + np.arange(-WINDOW + 1, 1)[None, :]])


def _wrapper(config: DeepLOBConfig) -> ExportWrapper:
    torch.manual_seed(3)
    return ExportWrapper(DeepLOB(config), 2.5, 0.75).eval()


def _exported(wrapper: ExportWrapper, path: Path) -> onnxruntime.InferenceSession:
    example = torch.zeros((2, WINDOW, 4 * wrapper.model.config.levels))
    export_onnx(wrapper, example, path, opset=17, input_name="book", output_names=OUTPUTS)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "config",
    [DeepLOBConfig(), DeepLOBConfig(conv_channels=4, inception_channels=4, lstm_hidden=8)],
    ids=["paper-sizes", "tiny"],
)
def test_onnxruntime_answers_like_torch_at_every_batch_size(
    tmp_path: Path, windows: npt.NDArray[np.float32], config: DeepLOBConfig
) -> None:
    wrapper = _wrapper(config)
    session = _exported(wrapper, tmp_path / "model.onnx")
    for batch in (windows[:1], windows[1:4], windows):
        with torch.no_grad():
            probabilities, volatility = wrapper(torch.from_numpy(batch))
        answered = session.run(list(OUTPUTS), {"book": batch})
        assert answered[0].shape == (len(batch), 3)
        assert np.abs(answered[0] - probabilities.numpy()).max() <= 1e-5
        assert np.allclose(answered[1], volatility.numpy(), rtol=1e-5, atol=1e-5)


def test_the_graph_computes_no_shapes_and_starts_the_lstm_from_zeros(tmp_path: Path) -> None:
    _exported(_wrapper(DeepLOBConfig()), tmp_path / "model.onnx")
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    operators = Counter(node.op_type for node in graph.node)
    assert operators["LSTM"] == 1
    assert not {"If", "Shape", "ConstantOfShape", "Cast", "Constant"} & set(operators)
    assert not {"ReduceSum", "Gather"} & set(operators)  # each a Squeeze of a length-1 axis
    assert operators["Squeeze"] == 2
    constants = {tensor.name for tensor in graph.initializer}
    for pad in (node for node in graph.node if node.op_type == "Pad"):
        assert pad.input[1] in constants  # the pads, folded from the exporter's shape chain
    (lstm,) = (node for node in graph.node if node.op_type == "LSTM")
    assert len(lstm.input) == 4  # X, W, R, B: no initial states, so zeros
    assert list(lstm.output) == ["", lstm.output[1]]  # only Y_h, the last hidden state


def test_the_network_answers_as_it_did_before_the_export_formulation(
    windows: npt.NDArray[np.float32],
) -> None:
    """Checkpoints trained before keep their answers: same weights, the former forward pass."""
    model = DeepLOB(DeepLOBConfig()).eval()
    former_lstm = torch.nn.LSTM(model.lstm.input_size, model.lstm.hidden_size, batch_first=True)
    former_lstm.load_state_dict(model.lstm.state_dict())
    book = torch.from_numpy(windows)
    with torch.no_grad():
        features = model.inception(model.convolutions(book.unsqueeze(1)))
        outputs, _ = former_lstm(features.squeeze(3).transpose(1, 2))
        last = outputs[:, -1, :]
        direction, volatility = model(book)
    assert torch.allclose(direction, model.direction(last), atol=1e-6)
    assert torch.allclose(volatility, model.volatility(last), atol=1e-6)
