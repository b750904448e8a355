"""A token bucket on integer nanoseconds, driven by an injected clock.

The bucket holds at most ``burst`` tokens and gains ``rate_per_s`` tokens per
second of clock time; each order takes one. Arithmetic is on integers: a
token is ``10**9 * q`` units, where ``rate_per_s = p / q`` exactly, and every
nanosecond adds ``p`` units, so no rate ever drifts by rounding.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

__all__ = ["TokenBucket"]

_NS_PER_S = 1_000_000_000


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; it starts full at ``now``."""

    __slots__ = ("_capacity", "_cost", "_gain", "_last", "_level", "burst", "rate_per_s")

    def __init__(self, rate_per_s: Decimal | Fraction | int, burst: int, now: int) -> None:
        rate = Fraction(rate_per_s)
        if rate <= 0:
            raise ValueError(f"rate_per_s must be greater than 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._gain = rate.numerator
        self._cost = _NS_PER_S * rate.denominator
        self._capacity = burst * self._cost
        self._level = self._capacity
        self._last = now

    def _refill(self, now: int) -> int:
        level = self._level
        elapsed = now - self._last
        if elapsed > 0:
            level = min(level + elapsed * self._gain, self._capacity)
            self._level = level
            self._last = now
        return level

    def try_take(self, now: int) -> bool:
        """Take one token if there is one at ``now``; return whether it was taken."""
        level = self._refill(now)
        if level < self._cost:
            return False
        self._level = level - self._cost
        return True

    def tokens(self, now: int) -> int:
        """Return how many whole tokens are available at ``now``."""
        return self._refill(now) // self._cost

    def wait_ns(self, now: int) -> int:
        """Return nanoseconds from ``now`` until a token is available (0: one is)."""
        missing = self._cost - self._refill(now)
        if missing <= 0:
            return 0
        return -(-missing // self._gain)
