"""What a model version reads and answers, taken from its ``metadata.json``.

Two kinds of input are served:

* ``book``: the last ``window`` book events of ``levels`` levels a side, in
  the training layout (ask price, ask size, bid price, bid size per level),
  normalised with the statistics stored in ``input.normalisation``; the ONNX
  input is ``[batch, window, 4 * levels]``.
* ``features``: the latest streaming feature vector, the columns named in
  ``input.columns`` (``feature.output`` names as the feature engine gives
  them), optionally z-scored with ``input.normalisation.mean``/``std``; the
  ONNX input is ``[batch, len(columns)]``.

``input.source`` names the kind; without it a metadata with ``levels`` and
``window`` (what ``tradekernel train`` writes) is a ``book`` model. The first
output is the class probabilities ``[batch, classes]``, with the class names
in ``outputs[0].classes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from kernel.models.normalisation import Normalisation

__all__ = ["BOOK_COLUMNS_PER_LEVEL", "InputSpec", "ModelSpec", "SpecError", "book_column_names"]

BOOK_COLUMNS_PER_LEVEL: Final = 4


class SpecError(ValueError):
    """A ``metadata.json`` that does not describe a servable model; the message says what."""


def book_column_names(levels: int) -> list[str]:
    """Return the training layout's column names for ``levels`` levels a side."""
    return [
        f"{side}_{what}_{level}"
        for level in range(1, levels + 1)
        for side, what in (("ask", "price"), ("ask", "size"), ("bid", "price"), ("bid", "size"))
    ]


@dataclass(frozen=True)
class InputSpec:
    """The input a version reads: its ONNX name, source and shape after the batch axis."""

    name: str
    source: Literal["book", "features"]
    shape: tuple[int, ...]
    columns: tuple[str, ...]
    window: int = 1
    levels: int = 0
    normalisation: Normalisation | None = None
    feature_mean: npt.NDArray[np.float64] | None = None
    feature_std: npt.NDArray[np.float64] | None = None

    def normalise_book(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Return a ``[window, columns]`` window of exact book integers as the model's input."""
        if self.normalisation is None:
            return rows.astype(np.float32)
        return self.normalisation.apply(rows)

    def normalise_features(self, values: list[float]) -> npt.NDArray[np.float32]:
        """Return the chosen feature values as the model's input row."""
        row = np.asarray(values, dtype=np.float64)
        if self.feature_mean is not None and self.feature_std is not None:
            row = (row - self.feature_mean) / self.feature_std
        return row.astype(np.float32)


@dataclass(frozen=True)
class ModelSpec:
    """A version's input, its probability output and class names."""

    input: InputSpec
    probabilities: str
    classes: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ModelSpec:
        """Read the spec; :class:`SpecError` names the field that is missing or wrong."""
        raw_input = metadata.get("input")
        if not isinstance(raw_input, Mapping):
            raise SpecError("metadata.json: input: expected an object")
        outputs = metadata.get("outputs")
        if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], Mapping):
            raise SpecError("metadata.json: outputs: expected a list of objects")
        classes = outputs[0].get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise SpecError("metadata.json: outputs[0].classes: expected at least two class names")
        names = tuple(str(output.get("name", "")) for output in outputs)
        if not all(names):
            raise SpecError("metadata.json: outputs: every output needs a name")
        return cls(_input(raw_input), names[0], tuple(map(str, classes)), names)


def _input(raw: Mapping[str, Any]) -> InputSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.json: input.name: expected the ONNX input's name")
    source = raw.get("source", "book" if "levels" in raw else None)
    if source == "book":
        window, levels = raw.get("window"), raw.get("levels")
        if not isinstance(window, int) or window < 1 or not isinstance(levels, int) or levels < 1:
            raise SpecError("metadata.json: input.window and input.levels: positive integers")
        columns = tuple(raw.get("columns") or book_column_names(levels))
        if list(columns) != book_column_names(levels):
            raise SpecError(
                f"metadata.json: input.columns: expected the book layout of {levels} levels "
                "(ask price, ask size, bid price, bid size per level)"
            )
        normalisation = None
        if raw.get("normalisation") is not None:
            try:
                normalisation = Normalisation.from_json(raw["normalisation"])
            except (KeyError, TypeError, ValueError) as error:
                raise SpecError(f"metadata.json: input.normalisation: {error}") from None
            if len(normalisation.mean) != len(columns) or len(normalisation.std) != len(columns):
                raise SpecError(
                    f"metadata.json: input.normalisation: {len(columns)} columns expected"
                )
        return InputSpec(
            name, "book", (window, len(columns)), columns, window, levels, normalisation
        )
    if source == "features":
        named = raw.get("columns")
        if not isinstance(named, list) or not named:
            raise SpecError("metadata.json: input.columns: the feature columns the model reads")
        mean = std = None
        scaling = raw.get("normalisation")
        if isinstance(scaling, Mapping):
            mean = np.asarray(scaling.get("mean"), dtype=np.float64)
            std = np.asarray(scaling.get("std"), dtype=np.float64)
            if mean.shape != (len(named),) or std.shape != (len(named),) or (std <= 0).any():
                raise SpecError(
                    f"metadata.json: input.normalisation: {len(named)} means and positive stds"
                )
        return InputSpec(
            name,
            "features",
            (len(named),),
            tuple(map(str, named)),
            feature_mean=mean,
            feature_std=std,
        )
    raise SpecError(f"metadata.json: input.source: 'book' or 'features', got {source!r}")
