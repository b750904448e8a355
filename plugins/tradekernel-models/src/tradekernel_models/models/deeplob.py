"""A DeepLOB-style CNN + LSTM with a direction head and a realised-volatility head.

The architecture follows Zhang, Zohren & Roberts, "DeepLOB: Deep Convolutional
Neural Networks for Limit Order Books" (IEEE TSP 2019), on inputs
``[batch, window, 4 * levels]`` in the column order ask price, ask size, bid
price, bid size for each level:

1. a (1, 2) convolution with stride 2 joins each price with its size, then two
   (4, 1) convolutions over time;
2. a second (1, 2) stride-2 convolution joins the ask and the bid of each
   level, then two (4, 1) convolutions;
3. a (1, levels) convolution joins all levels, then two (4, 1) convolutions;
4. an inception module: 1x1 then (3, 1); 1x1 then (5, 1); (3, 1) max-pooling
   then 1x1, concatenated;
5. an LSTM over time; its last hidden state feeds the heads.

Activations are leaky ReLUs (slope 0.01) and the (4, 1) convolutions pad as
Keras' ``same`` does (one row before, two after), as in the paper. Beyond
the paper, a second head regresses the next interval's realised volatility,
standardised with training statistics; :class:`ExportWrapper` turns the two
heads into what is exported and served: class probabilities and volatility in
basis points, and :func:`export_onnx` writes it as the graph onnxruntime serves.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    import onnx

__all__ = ["DeepLOB", "DeepLOBConfig", "ExportWrapper", "export_onnx"]

_SLOPE = 0.01


@dataclass(frozen=True)
class DeepLOBConfig:
    """Sizes of the network; the paper's are the defaults."""

    levels: int = 10
    conv_channels: int = 16
    inception_channels: int = 32
    lstm_hidden: int = 64
    classes: int = 3


def _time_convolutions(channels: int) -> list[nn.Module]:
    """Return two (4, 1) convolutions over time with Keras-``same`` padding."""
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            nn.ZeroPad2d((0, 0, 1, 2)),
            nn.Conv2d(channels, channels, kernel_size=(4, 1)),
            nn.LeakyReLU(_SLOPE),
        ]
    return layers


class _Inception(nn.Module):
    """Three parallel branches over time, concatenated on channels."""

    def __init__(self, channels_in: int, channels: int) -> None:
        super().__init__()
        self.short = nn.Sequential(
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, kernel_size=(3, 1), padding=(1, 0)),
            nn.LeakyReLU(_SLOPE),
        )
        self.long = nn.Sequential(
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
            nn.Conv2d(channels, channels, kernel_size=(5, 1), padding=(2, 0)),
            nn.LeakyReLU(_SLOPE),
        )
        self.pooled = nn.Sequential(
            nn.MaxPool2d(kernel_size=(3, 1), stride=1, padding=(1, 0)),
            nn.Conv2d(channels_in, channels, kernel_size=1),
            nn.LeakyReLU(_SLOPE),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.cat((self.short(inputs), self.long(inputs), self.pooled(inputs)), dim=1)


class DeepLOB(nn.Module):
    """Normalised book windows → (direction logits, standardised volatility)."""

    def __init__(self, config: DeepLOBConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.conv_channels
        self.convolutions = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=(1, 2), stride=(1, 2)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
            nn.Conv2d(channels, channels, kernel_size=(1, 2), stride=(1, 2)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
            nn.Conv2d(channels, channels, kernel_size=(1, config.levels)),
            nn.LeakyReLU(_SLOPE),
            *_time_convolutions(channels),
        )
        self.inception = _Inception(channels, config.inception_channels)
        # Sequence-first, as ONNX's LSTM is: the export needs no transposes around it.
        self.lstm = nn.LSTM(3 * config.inception_channels, config.lstm_hidden)
        self.direction = nn.Linear(config.lstm_hidden, config.classes)
        self.volatility = nn.Linear(config.lstm_hidden, 1)

    def forward(self, book: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``[batch, window, 4 * levels]`` to logits ``[batch, 3]`` and ``[batch, 1]``."""
        features = self.inception(self.convolutions(book.unsqueeze(1)))  # [B, C, T, 1]
        # Summing the width-1 axis drops it as squeeze(3) would, but exports as one
        # ReduceSum; squeeze exports a run-time shape test (If) on the dynamic batch.
        sequence = features.sum(3).permute(2, 0, 1)  # [T, B, C], ONNX's LSTM layout
        _, (hidden, _) = self.lstm(sequence)
        last = hidden[0]  # the hidden state after the last step
        return self.direction(last), self.volatility(last)


class ExportWrapper(nn.Module):
    """What is exported: class probabilities and realised volatility in basis points."""

    def __init__(self, model: DeepLOB, volatility_mean: float, volatility_std: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("volatility_mean", torch.tensor(volatility_mean))
        self.register_buffer("volatility_std", torch.tensor(volatility_std))

    def forward(self, book: Tensor) -> tuple[Tensor, Tensor]:
        logits, standardised = self.model(book)
        volatility = torch.clamp(standardised * self.volatility_std + self.volatility_mean, min=0.0)
        return torch.softmax(logits, dim=1), volatility


def export_onnx(
    wrapper: ExportWrapper,
    example: Tensor,
    path: Path,
    *,
    opset: int,
    input_name: str,
    output_names: Sequence[str],
) -> None:
    """Write ``wrapper`` to ``path`` as ONNX with a dynamic batch axis, lean for serving.

    The exporter builds the LSTM's zero initial states from the input's shape
    at run time (Shape, Gather, Concat, ConstantOfShape) and names every LSTM
    output; ONNX's LSTM starts from zeros when the initial states are absent
    and skips an output that is not named. Both are removed here, and what
    the exporter computes from constants alone (the pads of every padding, as
    a chain of shape operators) is replaced by its value; a sum over or a pick
    from an axis of length 1 becomes the Squeeze it amounts to. None of it
    changes an answer, and the graph stays portable: nothing in it depends on
    the machine that exports or serves it.
    """
    import onnx  # noqa: PLC0415 - the train extra's, only needed to export

    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but exports the LSTM without onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes={
                input_name: {0: "batch"},
                **{name: {0: "batch"} for name in output_names},
            },
        )
    model = onnx.load(str(path))
    _lean_lstm(model.graph)
    _fold_constants(model)
    _plain_squeezes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _lean_lstm(graph: onnx.GraphProto) -> None:
    consumed = {name for node in graph.node for name in node.input}
    consumed |= {output.name for output in graph.output}
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        del node.input[5:]  # initial_h, initial_c (and peepholes, never exported here)
        for index, name in enumerate(node.output):
            if name not in consumed:
                node.output[index] = ""
        for names in (node.input, node.output):  # an optional name left empty at the end
            while names and not names[-1]:
                names.pop()
    # Drop what only fed the removed inputs: walk back from the graph's outputs.
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output if name):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _fold_constants(model: onnx.ModelProto) -> None:
    """Replace each node whose inputs are all constants by initializers holding its outputs."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    graph = model.graph
    opsets = {opset.domain: opset.version for opset in model.opset_import}
    known = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    kept = []
    for node in graph.node:
        subgraphs = any(attribute.type == onnx.AttributeProto.GRAPH for attribute in node.attribute)
        if subgraphs or not all(name in known for name in node.input if name):
            kept.append(node)
            continue
        evaluator = ReferenceEvaluator(node, opsets=opsets)
        values = evaluator.run(None, {name: known[name] for name in node.input if name})
        assert isinstance(values, list)
        known.update(zip(node.output, values, strict=True))
    used = {name for node in kept for name in node.input} | {out.name for out in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(value, name) for name, value in known.items() if name in used
    )


def _plain_squeezes(model: onnx.ModelProto) -> None:
    """Turn ReduceSum over, or Gather of index 0 from, axes of static length 1 into Squeeze."""
    from onnx import numpy_helper, shape_inference  # noqa: PLC0415

    graph = model.graph
    inferred = shape_inference.infer_shapes(model, strict_mode=True).graph
    lengths = {
        info.name: [dim.dim_value if dim.HasField("dim_value") else 0 for dim in shape.dim]
        for info in inferred.value_info
        for shape in [info.type.tensor_type.shape]
    }
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        attributes = {attribute.name: attribute for attribute in node.attribute}
        shape = lengths.get(node.input[0])
        if shape is None or len(node.input) != 2 or node.input[1] not in constants:
            continue
        picked = constants[node.input[1]]
        if node.op_type == "ReduceSum" and attributes.get("keepdims") is not None:
            axes = [int(axis) % len(shape) for axis in picked.reshape(-1)]
            if attributes["keepdims"].i != 0 or not axes:
                continue
        elif node.op_type == "Gather" and picked.ndim == 0 and int(picked) == 0:
            axes = [attributes["axis"].i % len(shape) if "axis" in attributes else 0]
        else:
            continue
        if any(shape[axis] != 1 for axis in axes):
            continue
        name = f"{node.name}/squeezed_axes"
        graph.initializer.append(numpy_helper.from_array(np.asarray(axes, dtype=np.int64), name))
        node.op_type = "Squeeze"
        node.input[1] = name
        del node.attribute[:]
    used = {name for node in graph.node for name in node.input}
    initializers = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
