"""Exponential backoff with jitter between reconnect attempts.

After a venue drops every client at once (a deploy, a network blip), clients
that retry on a fixed schedule come back at the same instant and are dropped
again. Each delay here is drawn from ``[ceiling / 2, ceiling]``, where the
ceiling doubles per attempt up to ``cap_s``: half the delay keeps the retry
rate bounded, the random half spreads the clients out ("equal jitter").
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays for consecutive failed attempts; :meth:`reset` after a success."""

    __slots__ = ("_rng", "attempts", "base_s", "cap_s")

    def __init__(
        self, base_s: float = 0.5, cap_s: float = 30.0, *, rng: random.Random | None = None
    ) -> None:
        if base_s <= 0:
            raise ValueError(f"base_s must be greater than 0, got {base_s}")
        if cap_s < base_s:
            raise ValueError(f"cap_s ({cap_s}) must be at least base_s ({base_s})")
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempts = 0
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self) -> float:
        """Return the longest delay the next attempt may wait."""
        # min() before the power would overflow for a long outage's attempt count.
        exponent = min(self.attempts, 62)
        return min(self.cap_s, self.base_s * (1 << exponent))

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt, and count the attempt."""
        ceiling = self.ceiling()
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    def reset(self) -> None:
        """Start again from ``base_s``: the last attempt succeeded."""
        self.attempts = 0
