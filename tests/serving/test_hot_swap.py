"""Hot swap on real data: versions replaced while the bundled Binance recordings replay.

Every answer is recomputed in numpy from the test's own record of the book,
with the weights of the version the answer names, so a prediction that came
from another version than it says, or from a stale window, fails the test.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernel.adapters.base import RawFrame
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.serving import ModelRegistry, RegistryError, ServingEngine, Stage
from serving.support import (
    ReferenceRows,
    bundled_frames,
    reference_probabilities,
    write_book_version,
)
from tradekernel_sdk.predictions import Prediction

WINDOW = 5
SWAPS = 20


class Served:
    """A bus with the Binance feed, the reference rows and a serving engine, collecting answers."""

    def __init__(self, registry: ModelRegistry, *, batching: bool = True) -> None:
        self.bus = Bus()
        self.feed = create_feed("binance", self.bus)
        self.reference = ReferenceRows(self.bus)
        self.engine = ServingEngine(self.bus, registry, "direction", batching=batching)
        self.engine.start()
        self.predictions: list[Prediction] = []
        self.bus.subscribe("model.prediction.>", self.predictions.append)

    async def replay(
        self, frames: list[RawFrame], yield_every: int = 25, loading: asyncio.Event | None = None
    ) -> None:
        """Feed ``frames``, letting the loop run (batches, loads, swaps) every ``yield_every``.

        While ``loading`` is set the feed slows to one frame per millisecond, as
        a live feed would: events keep flowing during a load, but a slow load
        on a busy machine cannot outlast the recording.
        """
        for number, frame in enumerate(frames, 1):
            self.feed.on_frame(frame)
            if loading is not None and loading.is_set():
                await asyncio.sleep(0.001)
            elif number % yield_every == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.engine.flush()

    def check_every_answer(self, window: int = WINDOW) -> None:
        """Each answer equals the numpy recomputation for the version it names, at its event."""
        for prediction in self.predictions:
            key = (prediction.venue, prediction.symbol)
            expected = reference_probabilities(
                int(prediction.version), self.reference.window(key, prediction.event, window)
            )
            assert np.allclose(prediction.probabilities, expected, atol=1e-5), prediction


def versions(tmp_path: Path, count: int) -> Path:
    root = tmp_path / "models"
    for version in range(1, count + 1):
        write_book_version(root, "direction", str(version), window=WINDOW)
    return root


def test_twenty_swaps_during_a_real_replay_lose_no_event_and_fail_no_inference(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(versions(tmp_path, SWAPS + 1))
    frames = bundled_frames()

    async def main() -> Served:
        served = Served(registry)
        await registry.load("direction", "1")
        registry.promote("direction", "1")

        loading = asyncio.Event()

        async def swap_while_replaying() -> None:
            for version in range(2, SWAPS + 2):
                target = len(served.predictions) + 50  # let each version answer for a while
                while len(served.predictions) < target:
                    await asyncio.sleep(0)
                loading.set()
                answered_before = len(served.predictions)
                await registry.load("direction", str(version))  # in a worker thread
                loading.clear()
                registry.promote("direction", str(version))
                loads_overlapped.append(len(served.predictions) - answered_before)

        loads_overlapped: list[int] = []
        swapping = asyncio.create_task(swap_while_replaying())
        await served.replay(frames, loading=loading)
        assert swapping.done(), "the replay ended before the twentieth swap"
        await swapping
        assert sum(loads_overlapped) > 0, "no answer was served while a version was loading"
        return served

    served = asyncio.run(main())
    stats = served.engine.stats
    assert stats.failed == 0 and stats.unserved == 0
    assert stats.events == stats.scored + stats.warming
    assert len(served.predictions) == stats.scored == stats.predictions
    by_instrument: dict[tuple[str, str], list[int]] = defaultdict(list)
    for prediction in served.predictions:
        by_instrument[(prediction.venue, prediction.symbol)].append(prediction.event)
    for key, events in by_instrument.items():
        seen = len(served.reference.rows[key])
        assert events == list(range(WINDOW, seen + 1)), f"{key}: an event lost or repeated"
    answered_by = [int(p.version) for p in served.predictions]
    assert answered_by == sorted(answered_by), "an answer came from a version already replaced"
    assert set(answered_by) == set(range(1, SWAPS + 2))
    served.check_every_answer()
    assert registry.route("direction").production is registry.get("direction", str(SWAPS + 1))
    assert [s.stage for s in registry.versions("direction")].count(Stage.RETIRED) == SWAPS


def test_batching_gives_the_answers_of_one_by_one(tmp_path: Path) -> None:
    registry = ModelRegistry(versions(tmp_path, 1))
    frames = bundled_frames()

    async def main() -> tuple[Served, Served]:
        await registry.load("direction", "1")
        registry.promote("direction", "1")
        batched, single = Served(registry), Served(registry, batching=False)
        await batched.replay(frames, yield_every=200)
        await single.replay(frames)
        return batched, single

    batched, single = asyncio.run(main())
    assert batched.engine.stats.largest_batch > 1
    assert single.engine.stats.largest_batch == 1
    assert len(batched.predictions) == len(single.predictions) > 1_000
    for many, one in zip(batched.predictions, single.predictions, strict=True):
        assert (many.symbol, many.event, many.predicted) == (one.symbol, one.event, one.predicted)
        assert np.allclose(many.probabilities, one.probabilities, atol=1e-6)
    batched.check_every_answer()


@pytest.mark.parametrize(
    ("broken", "reason", "code"),
    [
        (dict(graph_window=WINDOW + 2), "input shape ['batch', 7, 40]", "invalid"),
        (dict(nan=True), "non-finite probabilities", "precondition"),
        (dict(model_bytes=b"\x08\x07not a protobuf"), "onnxruntime cannot load it", "precondition"),
    ],
    ids=["wrong-input-shape", "nan-output", "corrupt-file"],
)
def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, broken: dict[str, Any], reason: str, code: str
) -> None:
    root = versions(tmp_path, 1)
    write_book_version(root, "direction", "2", window=WINDOW, **broken)
    registry = ModelRegistry(root)
    frames = bundled_frames(3_000)

    async def main() -> Served:
        await registry.load("direction", "1")
        registry.promote("direction", "1")
        served = Served(registry)
        await served.replay(frames[:1_500])
        with pytest.raises(RegistryError) as refused:
            await registry.load("direction", "2")
        assert refused.value.reason == code
        assert reason in str(refused.value)
        await served.replay(frames[1_500:])
        return served

    served = asyncio.run(main())
    assert {p.version for p in served.predictions} == {"1"}
    assert served.engine.stats.failed == 0
    assert served.engine.stats.scored == len(served.predictions) > 100
    assert [s.version for s in registry.versions("direction")] == ["1"]


def test_a_model_file_changed_after_training_is_refused_with_both_hashes(tmp_path: Path) -> None:
    root = versions(tmp_path, 1)
    folder = write_book_version(root, "direction", "2", window=WINDOW)
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\x00")
    registry = ModelRegistry(root)

    async def main() -> None:
        await registry.load("direction", "1")
        registry.promote("direction", "1")
        with pytest.raises(RegistryError, match="is damaged or was replaced: its SHA-256 is"):
            await registry.load("direction", "2")
        with pytest.raises(RegistryError, match="the caller expected"):
            await registry.load("direction", "3", str(root / "direction" / "1"), "0" * 64)

    asyncio.run(main())
    assert registry.route("direction").production is registry.get("direction", "1")


def test_shadow_agreement_and_class_counts_equal_a_recomputation(tmp_path: Path) -> None:
    registry = ModelRegistry(versions(tmp_path, 2))
    frames = bundled_frames()

    async def main() -> Served:
        for version in ("1", "2"):
            await registry.load("direction", version)
        registry.promote("direction", "1")
        registry.shadow("direction", "2")
        served = Served(registry)
        await served.replay(frames)
        return served

    served = asyncio.run(main())
    assert {p.version for p in served.predictions} == {"1"}, "a shadow answer was published"
    agreed = 0
    shadow_classes: Counter[int] = Counter()
    for prediction in served.predictions:
        rows = served.reference.window(
            (prediction.venue, prediction.symbol), prediction.event, WINDOW
        )
        production = reference_probabilities(1, rows)
        shadow = reference_probabilities(2, rows)
        assert int(production.argmax()) == prediction.predicted
        shadow_classes[int(shadow.argmax())] += 1
        agreed += int(shadow.argmax() == production.argmax())
    metrics = registry.get("direction", "2").metrics
    assert metrics.compared == len(served.predictions) > 1_000
    assert metrics.agreed == agreed
    assert 0 < agreed < metrics.compared  # two different models: some agreement, not total
    assert metrics.by_class == [shadow_classes[index] for index in range(3)]
    assert served.engine.stats.shadow_scored == metrics.compared


def test_canary_answers_for_exactly_the_chosen_instruments(tmp_path: Path) -> None:
    registry = ModelRegistry(versions(tmp_path, 2))
    frames = bundled_frames()

    async def main() -> Served:
        for version in ("1", "2"):
            await registry.load("direction", version)
        registry.promote("direction", "1")
        registry.canary("direction", "2", instruments=["binance.ETHUSDT"])
        served = Served(registry)
        await served.replay(frames)
        return served

    served = asyncio.run(main())
    versions_by_symbol = defaultdict(set)
    for prediction in served.predictions:
        versions_by_symbol[prediction.symbol].add(prediction.version)
    assert versions_by_symbol == {"BTCUSDT": {"1"}, "ETHUSDT": {"2"}}
    served.check_every_answer()


def test_a_canary_share_is_chosen_by_instrument_and_always_the_same(tmp_path: Path) -> None:
    registry = ModelRegistry(versions(tmp_path, 2))

    async def main() -> None:
        for version in ("1", "2"):
            await registry.load("direction", version)

    asyncio.run(main())
    registry.promote("direction", "1")
    registry.canary("direction", "2", canary_bps=2_500)
    route = registry.route("direction")
    instruments = [f"venue.SYMBOL{number}" for number in range(4_000)]
    chosen = {name for name in instruments if route.acting(name) is route.canary}
    assert chosen == {name for name in instruments if route.acting(name) is route.canary}
    assert 0.22 < len(chosen) / len(instruments) < 0.28
    registry.canary("direction", "2", canary_bps=5_000)
    wider = registry.route("direction")
    assert chosen < {name for name in instruments if wider.acting(name) is wider.canary}


def test_rollback_returns_to_the_previous_version_and_cannot_go_back_twice(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(versions(tmp_path, 2))
    frames = bundled_frames(8_000)

    async def main() -> Served:
        for version in ("1", "2"):
            await registry.load("direction", version)
        registry.promote("direction", "1")
        registry.promote("direction", "2")
        served = Served(registry)
        await served.replay(frames[:4_000])
        assert registry.rollback("direction", "2") is registry.get("direction", "1")
        with pytest.raises(RegistryError, match="is retired, not production") as again:
            registry.rollback("direction", "2")
        assert again.value.reason == "precondition"
        await served.replay(frames[4_000:])
        return served

    served = asyncio.run(main())
    answered_by = [p.version for p in served.predictions]
    switch = answered_by.index("1")
    assert set(answered_by[:switch]) == {"2"} and set(answered_by[switch:]) == {"1"}
    assert registry.get("direction", "2").stage is Stage.RETIRED
    served.check_every_answer()
