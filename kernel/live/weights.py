"""Pace REST calls by the venue's documented request weights.

Venues count a weight per call in fixed windows aligned to the clock (Binance:
``REQUEST_WEIGHT`` 6000 per minute on spot, each endpoint with its own weight,
the running total echoed in ``X-MBX-USED-WEIGHT-1M``). Going over earns HTTP
429 with ``Retry-After``, and repeating that earns 418, an IP ban. The limiter
waits for the next window instead of spending weight the venue would refuse,
takes the venue's echoed total as the truth (other processes on the same IP
spend from the same budget), and honours ``Retry-After`` as a hard block.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

__all__ = ["WeightLimiter"]


class WeightLimiter:
    """At most ``limit`` weight in each ``interval_s`` window of the clock."""

    __slots__ = ("_blocked_until", "_clock", "_used", "_window", "interval_s", "limit", "waits")

    def __init__(
        self, limit: int, interval_s: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be greater than 0, got {interval_s}")
        self.limit = limit
        self.interval_s = interval_s
        self.waits = 0
        self._clock = clock
        self._window = -1
        self._used = 0
        self._blocked_until = 0.0

    def _roll(self, now: float) -> int:
        window = math.floor(now / self.interval_s)
        if window != self._window:
            self._window = window
            self._used = 0
        return window

    def used(self) -> int:
        """Return the weight spent in the current window."""
        self._roll(self._clock())
        return self._used

    def delay_for(self, weight: int) -> float:
        """Return seconds to wait before ``weight`` may be spent (0: it may now)."""
        if not 0 < weight <= self.limit:
            raise ValueError(f"weight must be in 1..{self.limit}, got {weight}")
        now = self._clock()
        if now < self._blocked_until:
            return self._blocked_until - now
        window = self._roll(now)
        if self._used + weight <= self.limit:
            return 0.0
        return (window + 1) * self.interval_s - now

    def try_spend(self, weight: int) -> bool:
        """Spend ``weight`` if the window has room; return whether it was spent."""
        if self.delay_for(weight) > 0:
            return False
        self._used += weight
        return True

    async def acquire(self, weight: int) -> None:
        """Wait until ``weight`` fits, then spend it."""
        while True:
            delay = self.delay_for(weight)
            if delay <= 0:
                self._used += weight
                return
            self.waits += 1
            await asyncio.sleep(delay)

    def observe_used(self, used: int) -> None:
        """Take the venue's running total for the current window (a response header)."""
        self._roll(self._clock())
        self._used = max(self._used, used)

    def block_for(self, seconds: float) -> None:
        """Spend nothing for ``seconds`` (a 429 or 418 answer's ``Retry-After``)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
