"""A version ``tradekernel train`` stores serves the answers ``models eval`` computes."""

from __future__ import annotations

import asyncio
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from models.tiny import tiny_config
from serving.support import BUNDLED_FILES

torch = pytest.importorskip(
    "torch",
    reason="training a version needs the models plug-in's train extra (torch): "
    "pip install -e 'plugins/tradekernel-models[train]'",
)

from kernel.adapters.registry import create_feed  # noqa: E402
from kernel.bus import Bus  # noqa: E402
from kernel.cli import main  # noqa: E402
from kernel.models.dataset import load_book_series, windows  # noqa: E402
from kernel.models.evaluate import OnnxModel  # noqa: E402
from kernel.models.normalisation import Normalisation  # noqa: E402
from kernel.models.repository import ModelRepository  # noqa: E402
from kernel.recording import open_frames  # noqa: E402
from kernel.serving import ModelRegistry, ServingEngine  # noqa: E402
from tradekernel_sdk.predictions import Prediction  # noqa: E402

BTC = BUNDLED_FILES[0]
SMALL_NETWORK = tiny_config("small", files=(BTC,))


def test_a_trained_version_serves_the_answers_models_eval_computes(tmp_path: Path) -> None:
    config = tmp_path / "small.toml"
    config.write_text(SMALL_NETWORK)
    with redirect_stdout(io.StringIO()):
        assert main(["train", "--config", str(config)]) == 0
    root = tmp_path / "repository"
    registry = ModelRegistry(root)
    asyncio.run(registry.load("small", "1"))
    registry.promote("small", "1")

    bus = Bus()
    feed = create_feed("binance", bus)
    engine = ServingEngine(bus, registry, "small", batching=False)
    engine.start()
    answers: list[Prediction] = []
    bus.subscribe("model.prediction.binance.BTCUSDT", answers.append)
    for frame in open_frames(BTC):
        feed.on_frame(frame)

    stored = ModelRepository(root).open("small:1")
    metadata = stored.metadata
    window = int(metadata["input"]["window"])
    series = load_book_series([BTC], "binance", "BTCUSDT", levels=int(metadata["input"]["levels"]))
    assert engine.stats.events == len(series)
    assert [a.event for a in answers] == list(range(window, len(series) + 1))
    ends = np.asarray([answer.event - 1 for answer in answers], dtype=np.int64)
    inputs = Normalisation.from_json(metadata["input"]["normalisation"]).apply(
        windows(series, ends, window)
    )
    expected, _ = OnnxModel(stored)(inputs)
    served = np.asarray([answer.probabilities for answer in answers])
    assert np.allclose(served, expected, atol=1e-6)
    assert [a.predicted for a in answers] == expected.argmax(axis=1).tolist()
    registry.close()
