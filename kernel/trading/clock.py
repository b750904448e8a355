"""Kernel time: the market's clock in a replay, the machine's when live."""

from __future__ import annotations

import time
from typing import Any

from kernel.bus import CLOCK_PRIORITY, Bus

__all__ = ["MarketClock"]


class MarketClock:
    """The latest receive time seen on the market-data topics.

    In a replay this is the recording's time, so latencies, cooldowns and
    timers behave as they did when the data was recorded, at any speed. Before
    the first event it reads the machine's clock.
    """

    def __init__(self, bus: Bus | None = None) -> None:
        self.now_ns = 0
        if bus is not None:
            for pattern in ("data.book.>", "data.snapshot.>", "data.trade.>", "data.quote.>"):
                bus.subscribe(pattern, self.observe, priority=CLOCK_PRIORITY)

    def observe(self, event: Any) -> None:
        """Advance to the event's receive time (never backwards)."""
        ts_recv = event.ts_recv
        self.now_ns = max(self.now_ns, ts_recv)

    def __call__(self) -> int:
        return self.now_ns or time.time_ns()
