"""The token bucket refills on the injected clock, in exact integer arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kernel.risk import TokenBucket

SECOND = 1_000_000_000


def test_bucket_starts_full_and_allows_the_burst() -> None:
    bucket = TokenBucket(10, burst=3, now=0)
    assert [bucket.try_take(0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_the_rate_on_the_injected_clock() -> None:
    bucket = TokenBucket(10, burst=1, now=0)
    assert bucket.try_take(0)
    assert not bucket.try_take(SECOND // 10 - 1)
    assert bucket.try_take(SECOND // 10)
    assert not bucket.try_take(SECOND // 10)


def test_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(10, burst=2, now=0)
    assert bucket.tokens(3600 * SECOND) == 2


def test_fractional_rate_is_exact() -> None:
    bucket = TokenBucket(Decimal("0.3"), burst=1, now=0)
    assert bucket.try_take(0)
    # One token every 10/3 s: 3,333,333,333.3 ns, so available at 3,333,333,334 ns.
    assert bucket.wait_ns(0) == 3_333_333_334
    assert not bucket.try_take(3_333_333_333)
    assert bucket.try_take(3_333_333_334)
    # Thirty tokens take exactly 100 s, without drift.
    bucket = TokenBucket(Decimal("0.3"), burst=30, now=0)
    assert all(bucket.try_take(0) for _ in range(30))
    assert bucket.tokens(100 * SECOND - 1) == 29
    assert bucket.tokens(100 * SECOND) == 30


def test_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(1, burst=1, now=10 * SECOND)
    assert bucket.try_take(10 * SECOND)
    assert not bucket.try_take(5 * SECOND)
    assert not bucket.try_take(11 * SECOND - 1)
    assert bucket.try_take(11 * SECOND)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bucket_rejects_a_rate_or_burst_out_of_range(rate: int, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst=burst, now=0)
