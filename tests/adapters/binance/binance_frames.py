"""Helpers for driving a Binance feed with real and hand-made frames."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import BinanceFeed
from kernel.bus import Bus
from kernel.recording import merge_frames, open_frames


class Recorder:
    """Collect every message published on the bus, by topic."""

    def __init__(self, bus: Bus) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._bus = bus
        bus.subscribe("data.>", self._record)

    def _record(self, message: Any) -> None:
        self.messages.append((type(message).__name__, message))

    def of(self, kind: str) -> list[Any]:
        return [message for name, message in self.messages if name == kind]


def load(paths: Iterable[Path]) -> list[RawFrame]:
    return list(merge_frames(*(open_frames(path) for path in paths)))


def run_feed(frames: Iterable[RawFrame], market: str = "spot") -> tuple[BinanceFeed, Recorder]:
    bus = Bus()
    recorder = Recorder(bus)
    feed = BinanceFeed(bus, market)  # type: ignore[arg-type]
    for frame in frames:
        feed.on_frame(frame)
    return feed, recorder


def frame(payload: Any, recv_ns: int = 1, source: str = "test") -> RawFrame:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return RawFrame(recv_ns, raw, source)
