"""What the signed REST clients of live order entry share: the venue's clock and an unknown outcome.

Signed requests carry a timestamp the venue checks against its own clock, so
each client measures the offset over REST and stamps with the venue's time.
A request that may or may not have acted (timeout, lost connection, 5xx) is
neither a success nor a refusal: :class:`OutcomeUnknownError` makes the
caller find out, never assume.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["OutcomeUnknownError", "VenueClock"]


class OutcomeUnknownError(Exception):
    """The request may or may not have taken effect (timeout, lost connection, 5xx)."""


class VenueClock:
    """The offset between the local clock and the venue's, measured over REST."""

    def __init__(self, *, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000):
        self.offset_ms = 0
        self.round_trip_ms = 0
        self.measurements = 0
        self._wall_ms = wall_ms

    def now_ms(self) -> int:
        """Return the venue's time as this process estimates it."""
        return self._wall_ms() + self.offset_ms

    def observe(self, sent_ms: int, server_ms: int, received_ms: int) -> None:
        """Take one measurement: the server stamped its time halfway through the round trip."""
        self.round_trip_ms = received_ms - sent_ms
        self.offset_ms = server_ms - (sent_ms + received_ms) // 2
        self.measurements += 1
