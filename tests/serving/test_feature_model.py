"""A model over streaming features is fed the feature engine's vectors, event by event."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np

from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.features import FeatureEngine, FeatureVector
from kernel.serving import ModelRegistry, ServingEngine
from serving.support import (
    FEATURE_COLUMNS,
    bundled_frames,
    feature_reference,
    write_feature_version,
)
from tradekernel_models.features import DEFAULT_FEATURE_SET, FEATURES
from tradekernel_sdk.predictions import Prediction


def test_each_feature_update_is_answered_from_the_columns_the_model_names(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    write_feature_version(root, "flow", "1")
    write_feature_version(root, "flow", "2")
    registry = ModelRegistry(root)

    async def load() -> None:
        await registry.load("flow", "1")
        await registry.load("flow", "2")

    asyncio.run(load())
    registry.promote("flow", "1")
    registry.shadow("flow", "2")

    bus = Bus()
    feed = create_feed("binance", bus)
    features = FeatureEngine(bus, DEFAULT_FEATURE_SET, FEATURES)
    features.start()
    engine = ServingEngine(bus, registry, "flow", batching=False)
    engine.start()
    vectors: dict[tuple[str, int], FeatureVector] = {}
    bus.subscribe("features.*.*", lambda v: vectors.__setitem__((v.symbol, v.update), v))
    answers: list[Prediction] = []
    bus.subscribe("model.prediction.>", answers.append)
    for frame in bundled_frames(8_000):
        feed.on_frame(frame)

    stats = engine.stats
    assert stats.feature_updates == len(vectors) > 1_000
    assert stats.scored == len(answers) == stats.feature_updates - stats.warming > 500
    agreed = 0
    for answer in answers:
        vector = vectors[(answer.symbol, answer.event)]
        values = dict(zip(vector.columns, vector.floats(), strict=True))
        row = [values[column] for column in FEATURE_COLUMNS]
        assert not any(math.isnan(value) for value in row)
        assert answer.version == "1"
        assert np.allclose(answer.probabilities, feature_reference(1, row), atol=1e-5)
        agreed += int(feature_reference(2, row).argmax() == answer.predicted)
    undefined = sum(
        any(math.isnan(dict(zip(v.columns, v.floats(), strict=True))[c]) for c in FEATURE_COLUMNS)
        for v in vectors.values()
    )
    assert stats.warming == undefined
    shadow = registry.get("flow", "2").metrics
    assert (shadow.compared, shadow.agreed) == (len(answers), agreed)
    registry.close()
