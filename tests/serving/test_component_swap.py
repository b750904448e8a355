"""A model served as a gRPC component is replaced while the kernel runs: start, shadow, switch.

Two components, each serving one stored version in its own event loop and
thread over loopback gRPC, answer the bundled Binance replay. Both are
versions in the registry (``uri = "component:NAME"``), which owns their
stages; the kernel's trading stack, bus, engine and links stay up
throughout. The test proves that every book event after the first window got
exactly one published answer across the switch, that each answer equals the
numpy recomputation for the version it names and carries the event's number,
and that the shadow's agreement equals a recomputation.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from serving.support import (
    CLASSES,
    ReferenceRows,
    bundled_frames,
    reference_probabilities,
    write_book_version,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components"))
from component_harness import link_to, served_in_thread
from trading_stack import TradingStack

from kernel.components import ComponentLink
from kernel.service.config import ComponentSpec
from kernel.serving import ModelRegistry, ServingEngine, Stage
from kernel.serving.registry import Components
from kernel.serving.remote import ComponentModels, ModelComponent
from tradekernel_sdk.predictions import Prediction

WINDOW = 5
INSTRUMENTS = [("binance", "BTCUSDT"), ("binance", "ETHUSDT")]


class TimedRows(ReferenceRows):
    """Reference rows that also remember each event's receive time."""

    def __init__(self, bus: Any) -> None:
        self.times: dict[tuple[str, str], list[int]] = {}
        super().__init__(bus)

    def _on_book(self, update: Any) -> None:
        super()._on_book(update)
        self.times.setdefault((update.venue, update.symbol), []).append(update.ts_recv)

    def event_at(self, key: tuple[str, str], ts_recv: int) -> int:
        return self.times[key].index(ts_recv) + 1


def test_a_component_model_is_swapped_by_starting_shadowing_and_switching(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    for version in ("1", "2"):
        write_book_version(root, "direction", version, window=WINDOW)
    frames = bundled_frames(8_000)
    parts = [frames[:2_000], frames[2_000:4_000], frames[4_000:6_000], frames[6_000:]]
    stack = TradingStack(tmp_path / "journal.tkj")
    reference = TimedRows(stack.bus)
    links: dict[str, ComponentLink] = {}
    registry = ModelRegistry(
        tmp_path / "empty",
        components=Components(frozenset({"direction_v1", "direction_v2"}), lambda: links),
        classes={"direction": CLASSES},
    )
    models = ComponentModels(stack.bus, registry, "direction")
    engine = ServingEngine(
        stack.bus, registry, "direction", books=stack.market.book, batching=False, remote=models
    )
    engine.start()
    published: list[Prediction] = []
    stack.bus.subscribe("model.prediction.>", published.append)
    second_answered: set[tuple[str, int]] = set()
    stack.bus.subscribe(
        "component.prediction.direction_v2",
        lambda message: second_answered.add((message.symbol, message.ts_event)),
    )
    marks: dict[str, int] = {}

    async def feed(chunk: list[Any], links: list[ComponentLink]) -> None:
        for frame in chunk:
            stack.feed.on_frame(frame)
            for link in links:
                await link.settle()

    async def main() -> None:
        first = ModelComponent(root / "direction" / "1", INSTRUMENTS)
        second = ModelComponent(root / "direction" / "2", INSTRUMENTS)
        with served_in_thread(first) as (first_address, _):
            old = link_to(stack, ComponentSpec(name="direction_v1", endpoint=first_address))
            links["direction_v1"] = old
            old.start()
            await old.wait_up(10)
            await registry.load("direction", "1", "component:direction_v1")
            registry.promote("direction", "1")
            await feed(parts[0], [old])
            with served_in_thread(second) as (second_address, _):
                new = link_to(stack, ComponentSpec(name="direction_v2", endpoint=second_address))
                links["direction_v2"] = new
                new.start()
                await new.wait_up(10)
                await registry.load("direction", "2", "component:direction_v2")
                registry.shadow("direction", "2")
                marks["shadow"] = len(published)
                await feed(parts[1], [old, new])
                registry.promote("direction", "2")
                marks["promote"] = len(published)
                await feed(parts[2], [old, new])
                await old.stop()  # the old component goes; the kernel does not
                await feed(parts[3], [new])
                await new.stop()

    asyncio.run(main())
    engine.stop()
    models.close()
    registry.close()
    stack.close()

    # No event lost or answered twice: one published answer per book event after the first window.
    expected = Counter(
        (symbol, ts) for (_, symbol), times in reference.times.items() for ts in times[WINDOW - 1 :]
    )
    assert Counter((p.symbol, p.ts_recv) for p in published) == expected
    versions = [p.version for p in published]
    assert set(versions[: marks["promote"]]) == {"1"}
    assert set(versions[marks["promote"] :]) == {"2"}
    for prediction in published:
        key = (prediction.venue, prediction.symbol)
        event = reference.event_at(key, prediction.ts_recv)
        assert prediction.event == event
        recomputed = reference_probabilities(
            int(prediction.version), reference.window(key, event, WINDOW)
        )
        assert np.allclose(prediction.probabilities, recomputed, atol=1e-6), prediction

    # Shadow agreement: the events both answered while version 2 shadowed version 1.
    compared = agreed = 0
    for prediction in published[marks["shadow"] : marks["promote"]]:
        if (prediction.symbol, prediction.ts_recv) not in second_answered:
            continue
        key = (prediction.venue, prediction.symbol)
        rows = reference.window(key, reference.event_at(key, prediction.ts_recv), WINDOW)
        compared += 1
        agreed += int(reference_probabilities(2, rows).argmax() == prediction.predicted)
    second = registry.get("direction", "2")
    assert (second.metrics.compared, second.metrics.agreed) == (compared, agreed)
    assert 0 < agreed < compared
    assert second.metrics.latency.count == second.metrics.predictions > 0
    assert models.stats.malformed == 0 and second.metrics.errors == 0
    assert registry.get("direction", "1").stage is Stage.RETIRED
    # The engine stood by for every event: nothing was scored in process.
    assert engine.stats.scored == 0 and engine.stats.standing_by == engine.stats.events
