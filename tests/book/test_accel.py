"""The compiled helpers of kernel.book.accel give exactly what the pure-Python reference gives."""

from __future__ import annotations

import os
import subprocess
import sys
from heapq import heapify, heappush
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.book import accel
from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError

compiled = pytest.importorskip("kernel.book._accel", reason="the C extension is not built")

_DIGITS = st.text("0123456789", min_size=1, max_size=22)
_PLAIN = st.builds(
    lambda whole, frac, dot: whole + ("." + frac if dot or frac else ""),
    _DIGITS,
    st.text("0123456789", max_size=22),
    st.booleans(),
)
# What a venue sends, and what it must never get away with.
_ODD = st.sampled_from(
    [
        "",
        ".",
        ".5",
        "-1.5",
        "-0",
        "+1",
        "1e5",
        "1_0",
        " 1",
        "1 ",
        "1.2.3",
        "١٢",
        "1.٢",
        "NaN",
        "9" * 19,
        "9" * 18,
        "9223372036854775807",
        "9223372036854775808",
        "0." + "0" * 30 + "1",
        "1." + "0" * 40,
    ]
)
_TEXT = st.one_of(_PLAIN, _ODD, st.text(max_size=8))


def _python(raw: Any, price_precision: int, size_precision: int) -> object:
    try:
        return accel.python_fixed_levels(
            raw, FixedConverter(price_precision), FixedConverter(size_precision)
        )
    except (FixedPointError, TypeError, ValueError) as error:
        return type(error)


def _compiled(raw: Any, price_precision: int, size_precision: int) -> object:
    converted = compiled.fixed_levels(raw, price_precision, size_precision)
    if converted is None:  # declined: the reference decides
        return _python(raw, price_precision, size_precision)
    return converted


@settings(max_examples=500)
@given(
    st.lists(st.lists(_TEXT, min_size=2, max_size=2), max_size=12),
    st.integers(0, 20),
    st.integers(0, 20),
)
def test_levels_convert_as_the_reference_does(
    raw: list[list[str]], price_precision: int, size_precision: int
) -> None:
    assert _compiled(raw, price_precision, size_precision) == _python(
        raw, price_precision, size_precision
    )


@settings(max_examples=300)
@given(st.lists(st.lists(_PLAIN, min_size=2, max_size=2), max_size=12), st.integers(0, 18))
def test_plain_levels_agree_with_the_reference_whenever_converted(
    raw: list[list[str]], precision: int
) -> None:
    converted = compiled.fixed_levels(raw, precision, precision)
    expected = _python(raw, precision, precision)
    if converted is not None:
        assert converted == expected
        assert all(type(price) is int and type(size) is int for price, size in converted)


def test_real_venue_strings_take_the_compiled_path() -> None:
    raw = [["61737.63000000", "0.00123000"], ["0.00000001", "12.5"], ["3", "0"]]
    assert compiled.fixed_levels(raw, 8, 8) == [
        (6173763000000, 123000),
        (1, 1250000000),
        (300000000, 0),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        [("1.0", "2.0")],  # tuples, not lists
        [["1.0", "2.0", "3.0"]],
        [["1.0"]],
        [["1.0", 2]],
        [["-1.0", "2.0"]],
        [["1.001", "2.0"]],  # more decimals than the precision
        ("1.0", "2.0"),
        None,
    ],
)
def test_odd_input_is_handed_back(raw: Any) -> None:
    assert compiled.fixed_levels(raw, 2, 2) is None


def test_a_rejected_string_raises_as_before_through_the_public_function() -> None:
    with pytest.raises(FixedPointError):
        accel.fixed_levels([["1.001", "1"]], FixedConverter(2), FixedConverter(2))
    assert accel.fixed_levels([["-1.5", "1"]], FixedConverter(1), FixedConverter(0)) == [(-15, 1)]


def _lazy_heap(operations: list[tuple[int, bool]], sign: int) -> tuple[list[int], dict[int, int]]:
    """Build a heap with stale and repeated entries, as L2Book leaves it."""
    heap: list[int] = []
    levels: dict[int, int] = {}
    for price, live in operations:
        if live:
            if price not in levels:
                heappush(heap, price * sign)
            levels[price] = price % 7 + 1
        else:
            levels.pop(price, None)
    return heap, levels


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.integers(-50, 400), st.booleans()), max_size=300),
    st.integers(-2, 40),
    st.sampled_from([1, -1]),
)
def test_heap_walk_matches_the_reference(
    operations: list[tuple[int, bool]], depth: int, sign: int
) -> None:
    heap, levels = _lazy_heap(operations, sign)
    assert compiled.top_levels(heap, levels, depth, sign) == accel.python_top_levels(
        heap, levels, depth, sign
    )


def test_heap_walk_of_a_fresh_heap_is_the_sorted_head() -> None:
    heap = list(range(1000, 0, -3))
    heapify(heap)
    levels = dict.fromkeys(heap, 1)
    assert compiled.top_levels(heap, levels, 7, 1) == [(price, 1) for price in sorted(heap)[:7]]


def test_the_pure_python_path_is_used_when_asked() -> None:
    code = "from kernel.book import accel; print(accel.COMPILED, accel.top_levels.__module__)"
    env = {**os.environ, "TRADEKERNEL_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "kernel.book.accel"]


def _python_apply_side(
    levels: dict[int, int], heap: list[int], updates: list[tuple[int, int]], sign: int
) -> None:
    """L2Book.apply's Python loop for one side."""
    for price, size in updates:
        if size:
            if price not in levels:
                heappush(heap, price * sign)
            levels[price] = size
        else:
            levels.pop(price, None)


_UPDATES = st.lists(st.tuples(st.integers(-20, 200), st.integers(-2, 3)), max_size=60)


@settings(max_examples=500)
@given(st.lists(_UPDATES, max_size=8), st.sampled_from([1, -1]), st.booleans())
def test_applying_a_side_leaves_the_same_dict_and_heap(
    diffs: list[list[tuple[int, int]]], sign: int, as_tuple: bool
) -> None:
    levels: dict[int, int] = {}
    heap: list[int] = []
    expected_levels: dict[int, int] = {}
    expected_heap: list[int] = []
    for updates in diffs:
        assert compiled.apply_side(levels, heap, tuple(updates) if as_tuple else updates, sign)
        _python_apply_side(expected_levels, expected_heap, updates, sign)
        assert levels == expected_levels
        assert heap == expected_heap  # same heappush, same layout


@pytest.mark.parametrize(
    "updates",
    [
        [(1, 1), [2, 1]],
        [(1, 1), (2,)],
        [(1, 1), (2, 1.0)],
        [(True, 1)],
        iter([(1, 1)]),
        {(1, 1)},
    ],
)
def test_a_side_it_cannot_apply_is_left_untouched(updates: Any) -> None:
    levels = {5: 1}
    heap = [5]
    assert compiled.apply_side(levels, heap, updates, 1) is False
    assert levels == {5: 1} and heap == [5]


def test_heap_walk_past_64_bits_uses_the_reference() -> None:
    heap = [2**70, 2**71, 3]
    heapify(heap)
    levels = dict.fromkeys(heap, 1)
    assert compiled.top_levels(heap, levels, 2, 1) == [(3, 1), (2**70, 1)]
    negated = [-price for price in heap]
    heapify(negated)
    assert compiled.top_levels(negated, levels, 2, -1) == [(2**71, 1), (2**70, 1)]


@settings(max_examples=200)
@given(st.lists(st.tuples(_UPDATES, _UPDATES), max_size=12), st.integers(1, 12))
def test_a_book_on_the_pure_python_path_ends_as_the_compiled_one(
    diffs: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]], depth: int
) -> None:
    from kernel.book import L2Book, l2

    fast = L2Book()
    for bids, asks in diffs:
        fast.apply(bids, asks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(l2, "apply_side", None)
        patch.setattr(l2, "top_levels", accel.python_top_levels)
        pure = L2Book()
        for bids, asks in diffs:
            pure.apply(bids, asks)
        assert (fast.bids, fast.asks) == (pure.bids, pure.asks)
        assert (fast._bid_heap, fast._ask_heap) == (pure._bid_heap, pure._ask_heap)
        pure_views = (pure.bid_levels(depth), pure.ask_levels(depth), pure.best_bid())
    assert (fast.bid_levels(depth), fast.ask_levels(depth), fast.best_bid()) == pure_views


class _Price(int):
    """A price whose comparisons run Python code (a key no feed produces)."""


def test_a_heap_of_other_keys_is_walked_by_the_reference() -> None:
    heap = [_Price(3), _Price(7), 5]
    heapify(heap)
    levels = {3: 1, 5: 2, 7: 3}
    assert compiled.top_levels(heap, levels, 2, 1) == [(3, 1), (5, 2)]
