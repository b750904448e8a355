"""A circuit breaker: stop hammering a venue that keeps failing.

``CLOSED`` lets every attempt through and counts consecutive failures. At
``failure_threshold`` it trips to ``OPEN``: attempts are refused until
``reset_after_s`` has passed, then one trial attempt goes through
(``HALF_OPEN``). Its success closes the circuit; its failure opens it again
for another full period.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker", "CircuitState"]


class CircuitState(enum.Enum):
    """Whether attempts may go through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and refuses attempts while the circuit is open."""

    __slots__ = (
        "_clock",
        "_opened_at",
        "consecutive_failures",
        "failure_threshold",
        "reset_after_s",
        "state",
        "trips",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if reset_after_s <= 0:
            raise ValueError(f"reset_after_s must be greater than 0, got {reset_after_s}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.trips = 0
        self._clock = clock
        self._opened_at = 0.0

    def allow(self) -> bool:
        """Return whether an attempt may go now (moving OPEN to HALF_OPEN when due)."""
        if self.state is CircuitState.OPEN:
            if self._clock() - self._opened_at < self.reset_after_s:
                return False
            self.state = CircuitState.HALF_OPEN
        return True

    def retry_in(self) -> float:
        """Return seconds until an attempt is allowed (0 when one is)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())

    def record_success(self) -> None:
        """The attempt worked: close the circuit."""
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0

    def record_failure(self) -> None:
        """The attempt failed: count it, and open the circuit at the threshold."""
        self.consecutive_failures += 1
        if (
            self.state is CircuitState.HALF_OPEN
            or self.consecutive_failures >= self.failure_threshold
        ):
            if self.state is not CircuitState.OPEN:
                self.trips += 1
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()
