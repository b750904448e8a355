"""Recorded market data as the event sequence the kernel publishes."""

from __future__ import annotations

import os
from collections.abc import Iterable

from kernel.adapters.base import Feed
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.recording import merge_frames, open_frames
from tradekernel_sdk.types import MarketEvent

__all__ = ["EVENT_PATTERNS", "recorded_events"]

EVENT_PATTERNS = (
    "data.snapshot.*.*",
    "data.book.*.*",
    "data.status.*.*",
    "data.trade.*.*",
    "data.bar.>",
)
"""The bus topics features read: books, their status, trades and bars (not quotes)."""


def recorded_events(
    paths: Iterable[str | os.PathLike[str]],
    venue: str,
    *,
    bus: Bus | None = None,
    feed: Feed | None = None,
) -> list[MarketEvent]:
    """Replay captures through ``venue``'s feed and return every event it publishes, in order.

    The captures are merged by receive time and checked as in a replay; only
    valid books publish. Pass ``bus`` (and the ``feed`` publishing on it, to
    share its books) to let other subscribers, such as a feature engine, see
    the same events as they are published.
    """
    if feed is not None and bus is None:
        raise ValueError("a feed comes with the bus it publishes on")
    bus = Bus() if bus is None else bus
    events: list[MarketEvent] = []
    for pattern in EVENT_PATTERNS:
        bus.subscribe(pattern, events.append)
    if feed is None:
        feed = create_feed(venue, bus)
    try:
        for frame in merge_frames(*(open_frames(path) for path in paths)):
            feed.on_frame(frame)
    finally:
        for pattern in EVENT_PATTERNS:
            bus.unsubscribe(pattern, events.append)
    return events
