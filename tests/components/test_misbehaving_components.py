"""Components that break the rules are refused or counted; the kernel and the session go on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from component_harness import linked
from component_samples import Crashy, GreedyDetector

from kernel.adapters.base import RawFrame


def test_a_detector_sending_an_order_is_refused_and_its_detections_arrive(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    async def main() -> None:
        detections: list[Any] = []
        async with linked(tmp_path, GreedyDetector, name="detector") as run:
            run.stack.bus.subscribe("component.detection.detector", detections.append)
            await run.feed(btc_frames[:1500])
            assert run.link.kind == "detector"
            assert run.component.refusals == ["a detector may not send orders"]
            assert not run.stack.orders.orders, "no order may come from a detector"
            assert [d.kind for d in detections] == ["wide_spread"]
            assert detections[0].score.units == 5 and detections[0].score.precision == 1
            assert run.link.state.value == "up"

    asyncio.run(main())


def test_a_component_raising_in_callbacks_is_counted_and_reported_not_fatal(
    tmp_path: Path, btc_frames: list[RawFrame], caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"venue": "binance", "symbol": "BTCUSDT"}

    async def main() -> None:
        async with linked(tmp_path, Crashy, name="crashy", settings=settings) as run:
            await run.feed(btc_frames[:3000])
            books = run.component.books
            assert books >= 30
            assert run.link.stats.callback_errors == books // 10
            assert run.servicer is not None and run.servicer.callback_errors == books // 10
            assert run.link.state.value == "up"
            assert run.link.stats.downs == 0

    with caplog.at_level(logging.ERROR, logger="kernel.components.link"):
        asyncio.run(main())
    reported = [r.getMessage() for r in caplog.records if "on_book raised" in r.getMessage()]
    assert reported and "not to my taste" in reported[0] and "callback=on_book" in reported[0]
