"""An onnxruntime session for one model version, checked before it may serve.

:func:`open_version` runs off the event loop (the registry calls it in a
thread): it reads the files, checks the SHA-256, opens the session from the
bytes it hashed and validates it. onnxruntime builds a session holding the
interpreter lock (milliseconds), and an inference on the event loop that ends
meanwhile waits for it; so the loading thread then pauses for nine times as
long as the build took, and loads back to back hold the lock building
sessions at most a tenth of the time. Validation is what makes a swap safe:

1. **schema**: one input, named as the metadata says, float32, with the
   shape after the batch axis that the feature spec implies; the probability
   output present with ``[batch, classes]``;
2. **warm-up**: one inference on a batch of two inputs (zeros, and the
   normalised all-ones window or row), so the first live call pays no
   allocation;
3. **sanity**: the answers are finite, non-negative, sum to 1 per row and have
   the expected shape.

A refusal is a :class:`VersionRejected` with ``invalid`` set when the version
contradicts its own metadata (a schema mismatch) and clear when it is
unusable as stored (damaged file, wrong hash, NaN output).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from kernel.serving.spec import ModelSpec, SpecError

__all__ = ["OnnxVersion", "VersionFiles", "VersionRejected", "open_version"]

PROBABILITY_TOLERANCE: Final = 1e-3
"""How far a row of probabilities may sum from 1."""

SESSION_BUILD_SHARE: Final = 0.1
"""The most of a loading thread's time that building onnxruntime sessions may take."""


class VersionRejected(Exception):
    """A version refused at load; ``invalid`` when it contradicts its metadata."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(frozen=True)
class VersionFiles:
    """Where a version's files are: ``model.onnx`` and the ``metadata.json`` beside it."""

    model: Path
    metadata: Path


@dataclass
class OnnxVersion:
    """A validated version: its session, spec and identity. Safe to call from one thread."""

    name: str
    version: str
    uri: str
    sha256: str
    spec: ModelSpec
    metadata: dict[str, Any]
    session: Any
    threads: int
    loaded_ns: int = field(default_factory=time.time_ns)

    def predict(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Return the class probabilities ``[batch, classes]`` of a batch of inputs."""
        (probabilities,) = self.session.run(
            [self.spec.probabilities], {self.spec.input.name: inputs}
        )
        return np.asarray(probabilities, dtype=np.float32)


def open_version(
    name: str, version: str, files: VersionFiles, expected_sha256: str, *, threads: int = 1
) -> OnnxVersion:
    """Open and validate a version; raise :class:`VersionRejected` with the reason."""
    if not files.model.is_file():
        raise VersionRejected(f"{files.model}: no such model file")
    try:
        metadata = json.loads(files.metadata.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VersionRejected(f"{files.metadata}: no metadata.json beside the model") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VersionRejected(f"{files.metadata}: cannot read it: {error}") from None
    if not isinstance(metadata, dict):
        raise VersionRejected(f"{files.metadata}: expected a JSON object")
    try:
        # The session is built from these very bytes: what was hashed is what serves.
        model_bytes = files.model.read_bytes()
    except OSError as error:
        raise VersionRejected(f"{files.model}: cannot read it: {error}") from None
    actual = hashlib.sha256(model_bytes).hexdigest()
    recorded = metadata.get("model_sha256")
    if recorded is not None and recorded != actual:
        raise VersionRejected(
            f"{files.model} is damaged or was replaced: its SHA-256 is {actual}, "
            f"metadata.json records {recorded}"
        )
    if expected_sha256 and expected_sha256.lower() != actual:
        raise VersionRejected(
            f"{files.model}: its SHA-256 is {actual}, the caller expected {expected_sha256.lower()}"
        )
    try:
        spec = ModelSpec.from_metadata(metadata)
    except SpecError as error:
        raise VersionRejected(str(error), invalid=True) from None
    session = _session(files.model, model_bytes, threads)
    loaded = OnnxVersion(name, version, str(files.model), actual, spec, metadata, session, threads)
    _check_schema(loaded)
    _warm_up(loaded)
    return loaded


def _session(path: Path, model_bytes: bytes, threads: int) -> Any:
    # Imported here: commands that never serve do not pay for loading onnxruntime.
    import onnxruntime  # type: ignore[import-untyped]  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    started = time.perf_counter()
    try:
        session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise VersionRejected(f"{path}: onnxruntime cannot load it: {error}") from None
    # onnxruntime holds the interpreter lock while it parses and optimises the graph,
    # so an inference finishing meanwhile waits for it. Pausing after each build spaces
    # back-to-back loads out: they stall inferences that much less often.
    held = time.perf_counter() - started
    time.sleep(held * (1 - SESSION_BUILD_SHARE) / SESSION_BUILD_SHARE)
    return session


def _check_schema(loaded: OnnxVersion) -> None:
    spec = loaded.spec
    inputs = loaded.session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != spec.input.name:
        found = [item.name for item in inputs]
        raise VersionRejected(
            f"{loaded.uri}: inputs {found}, its metadata says one input {spec.input.name!r}",
            invalid=True,
        )
    if inputs[0].type != "tensor(float)":
        raise VersionRejected(
            f"{loaded.uri}: input {spec.input.name!r} is {inputs[0].type}, expected float32",
            invalid=True,
        )
    shape = list(inputs[0].shape)
    expected = list(spec.input.shape)
    if len(shape) != len(expected) + 1 or shape[1:] != expected:
        raise VersionRejected(
            f"{loaded.uri}: input shape {shape}, its feature spec implies [batch, "
            f"{', '.join(map(str, expected))}] ({spec.input.source} input, "
            f"columns {len(spec.input.columns)})",
            invalid=True,
        )
    outputs = {output.name: output for output in loaded.session.get_outputs()}
    missing = [name for name in spec.outputs if name not in outputs]
    if missing:
        raise VersionRejected(
            f"{loaded.uri}: outputs {sorted(outputs)}, its metadata names {list(spec.outputs)}",
            invalid=True,
        )
    probability_shape = list(outputs[spec.probabilities].shape)
    classes = len(spec.classes)
    width = probability_shape[1] if len(probability_shape) == 2 else None
    if len(probability_shape) != 2 or (isinstance(width, int) and width != classes):
        raise VersionRejected(
            f"{loaded.uri}: output {spec.probabilities!r} has shape {probability_shape}, "
            f"expected [batch, {classes}]",
            invalid=True,
        )


def warm_up_inputs(spec: ModelSpec) -> npt.NDArray[np.float32]:
    """Return a batch of two plausible inputs: zeros, and a normalised constant book or row."""
    shape = spec.input.shape
    batch = np.zeros((2, *shape), dtype=np.float32)
    if spec.input.source == "book":
        levels = spec.input.levels
        row = []
        for level in range(levels):  # a book around 100.0 with one unit at each level
            row += [10_000 + level + 1, 100, 10_000 - level - 1, 100]
        window = np.tile(np.asarray(row, dtype=np.int64), (spec.input.window, 1))
        batch[1] = spec.input.normalise_book(window)
    else:
        batch[1] = spec.input.normalise_features([1.0] * len(spec.input.columns))
    return batch


def _warm_up(loaded: OnnxVersion) -> None:
    inputs = warm_up_inputs(loaded.spec)
    try:
        probabilities = loaded.predict(inputs)
    except Exception as error:  # onnxruntime's own errors
        raise VersionRejected(f"{loaded.uri}: the warm-up inference failed: {error}") from None
    check_probabilities(loaded.uri, probabilities, len(inputs), len(loaded.spec.classes))


def check_probabilities(
    where: str, probabilities: npt.NDArray[np.float32], rows: int, classes: int
) -> None:
    """Refuse answers that are not one probability distribution per input row."""
    if probabilities.shape != (rows, classes):
        raise VersionRejected(
            f"{where}: the warm-up answered shape {list(probabilities.shape)}, "
            f"expected [{rows}, {classes}]"
        )
    if not np.isfinite(probabilities).all():
        raise VersionRejected(f"{where}: the warm-up answered non-finite probabilities")
    if (probabilities < 0).any():
        raise VersionRejected(f"{where}: the warm-up answered negative probabilities")
    sums = probabilities.sum(axis=1)
    if (np.abs(sums - 1.0) > PROBABILITY_TOLERANCE).any():
        raise VersionRejected(
            f"{where}: the warm-up's probabilities sum to {sums.tolist()}, not 1 "
            f"(tolerance {PROBABILITY_TOLERANCE})"
        )
