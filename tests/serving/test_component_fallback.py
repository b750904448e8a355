"""A component version killed mid-stream: the in-process version answers from the next event,
until the component is back and answering."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from serving.support import bundled_frames, start_model_component, write_book_version

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components"))
from component_harness import link_to
from trading_stack import TradingStack

from kernel.components.link import ComponentState
from kernel.service.config import ComponentSpec
from kernel.serving import ModelRegistry, ServingEngine, Stage
from kernel.serving.registry import Components
from kernel.serving.remote import ComponentModels
from tradekernel_sdk.predictions import Prediction


def test_a_killed_component_hands_over_to_the_in_process_version_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "models"
    write_book_version(root, "direction", "1")
    write_book_version(root, "direction", "2")
    stack = TradingStack(tmp_path / "journal.tkj")
    links: dict[str, Any] = {}
    registry = ModelRegistry(
        root, components=Components(frozenset({"direction_v2"}), lambda: links)
    )
    models = ComponentModels(stack.bus, registry, "direction")
    engine = ServingEngine(
        stack.bus,
        registry,
        "direction",
        instruments=[("binance", "BTCUSDT")],
        books=stack.market.book,
        batching=False,
        remote=models,
    )
    engine.start()
    answers: list[Prediction] = []
    stack.bus.subscribe("model.prediction.binance.BTCUSDT", answers.append)
    frames = bundled_frames(12_000)
    unanswerable = 0  # BTCUSDT events after the kill while the link still believed it up

    def count_unanswerable(update: Any) -> None:
        nonlocal unanswerable
        if killed and link.state is ComponentState.UP and update.symbol == "BTCUSDT":
            unanswerable += 1

    killed = False
    marks: dict[str, int] = {}
    stack.bus.subscribe("data.book.binance.BTCUSDT", count_unanswerable)
    process, address = start_model_component(
        tmp_path, root / "direction" / "2", [("binance", "BTCUSDT")]
    )
    link = link_to(stack, ComponentSpec(name="direction_v2", endpoint=address))
    links["direction_v2"] = link

    async def main() -> None:
        nonlocal killed
        await registry.load("direction", "1")
        registry.promote("direction", "1")
        link.start()
        await link.wait_up(10)
        await registry.load("direction", "2", "component:direction_v2")
        registry.promote("direction", "2")  # version 1 is retired: the stand-in
        for frame in frames[:5_000]:
            stack.feed.on_frame(frame)
            await link.settle()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed = True
        for number, frame in enumerate(frames[5_000:10_000]):
            stack.feed.on_frame(frame)
            if number % 10 == 0:
                await asyncio.sleep(0.001)
        # The component comes back where the kernel dials it; it answers once its window is full.
        marks["restart"] = len(answers)
        killed = False  # from here the link's state speaks for the new process
        again, _ = start_model_component(
            tmp_path, root / "direction" / "2", [("binance", "BTCUSDT")], address
        )
        try:
            await link.wait_up(30)
            for frame in frames[10_000:]:
                stack.feed.on_frame(frame)
                await link.settle()
            await link.stop()
        finally:
            again.kill()
            again.wait(10)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    registry.close()
    stack.close()

    versions = [answer.version for answer in answers]
    handover = versions.index("1")
    back = handover + versions[handover:].index("2")
    assert set(versions[:handover]) == {"2"}
    assert set(versions[handover:back]) == {"1"} and set(versions[back:]) == {"2"}
    assert back > marks["restart"]  # version 1 answered until the component's first answer
    assert models.stats.fallbacks == 1
    assert models.down == {}
    assert registry.get("direction", "2").stage is Stage.PRODUCTION  # stages did not move
    stats = engine.stats
    assert stats.events == stats.standing_by + stats.scored + stats.warming
    assert stats.scored == versions.count("1") > 100
    # Every event was answered exactly once by one of the two, except those the dead
    # component was sent: none is lost to the restarted component's filling window.
    assert len({answer.ts_recv for answer in answers}) == len(answers)
    first_window = 5 - 1  # the component answers from its fifth event on
    book_events = len(answers) + unanswerable + first_window
    assert stats.events == book_events
    assert unanswerable < 50
    assert any(
        "is down" in record.message and "the in-process version 1 answers" in record.message
        for record in caplog.records
    )
    assert any("is up and answers again" in record.message for record in caplog.records)
