"""Backoff, circuit breaker and request-weight pacing, on injected clocks."""

from __future__ import annotations

import asyncio
import random

import pytest

from kernel.live import Backoff, CircuitBreaker, CircuitState, WeightLimiter


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read the state afresh (an assert on it would otherwise narrow its type for good)."""
    return breaker.state


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_backoff_delays_double_within_their_jitter_band_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0, rng=random.Random(7))
    ceilings = []
    for _ in range(8):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_backoff_reset_starts_again_from_the_base() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.ceiling() == 1.0
    assert backoff.attempts == 0


def test_backoff_spreads_clients_that_failed_together() -> None:
    clients = [Backoff(base_s=1.0, cap_s=30.0, rng=random.Random(seed)) for seed in range(50)]
    third_delays = [[b.next_delay() for _ in range(3)][-1] for b in clients]
    assert len({round(d, 3) for d in third_delays}) > 40


def test_backoff_survives_a_long_outage_without_overflow() -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0, rng=random.Random(3))
    backoff.attempts = 10_000
    assert 2.5 <= backoff.next_delay() <= 5.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0)])
def test_backoff_refuses_nonsense_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=base, cap_s=cap)


def test_circuit_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # the run is broken: the count starts over
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    assert breaker.trips == 1
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10.0)


def test_circuit_lets_one_trial_through_after_the_reset_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10.0, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.record_failure()  # the trial failed: open for another full period
    assert state(breaker) is CircuitState.OPEN
    assert breaker.trips == 2
    assert breaker.retry_in() == pytest.approx(10.0)
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.retry_in() == 0.0


def test_weights_fit_in_a_window_aligned_to_the_clock() -> None:
    clock = FakeClock(now=120.0)  # the start of a minute
    limiter = WeightLimiter(limit=100, interval_s=60.0, clock=clock)
    assert limiter.try_spend(60)
    assert limiter.try_spend(40)
    assert not limiter.try_spend(1)
    clock.now = 150.0
    assert limiter.delay_for(1) == pytest.approx(30.0)
    clock.now = 180.0  # the next minute: a fresh budget
    assert limiter.used() == 0
    assert limiter.try_spend(100)


def test_weights_take_the_venues_running_total_as_the_truth() -> None:
    clock = FakeClock(now=0.0)
    limiter = WeightLimiter(limit=6000, interval_s=60.0, clock=clock)
    limiter.try_spend(20)
    limiter.observe_used(5990)  # another process on this IP spent the rest
    assert limiter.used() == 5990
    assert not limiter.try_spend(20)
    limiter.observe_used(10)  # a late, smaller echo never lowers what we know
    assert limiter.used() == 5990


def test_retry_after_blocks_every_weight_until_it_passes() -> None:
    clock = FakeClock(now=0.0)
    limiter = WeightLimiter(limit=10, interval_s=1.0, clock=clock)
    limiter.block_for(120.0)  # a 418 ban
    clock.now = 60.5
    assert limiter.delay_for(1) == pytest.approx(59.5)
    clock.now = 120.0
    assert limiter.try_spend(1)


def test_a_weight_larger_than_the_limit_is_a_programming_error() -> None:
    limiter = WeightLimiter(limit=10, interval_s=1.0)
    with pytest.raises(ValueError, match=r"weight must be in 1\.\.10"):
        limiter.delay_for(11)


def test_acquire_waits_for_the_next_window() -> None:
    limiter = WeightLimiter(limit=2, interval_s=0.05)

    async def main() -> int:
        for _ in range(6):
            await limiter.acquire(1)
        return limiter.waits

    assert asyncio.run(main()) >= 2
