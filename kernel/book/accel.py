"""The hot path's tight loops: compiled when the extension is built, else pure Python.

* :func:`fixed_levels` turns a venue's ``[["price", "size"], ...]`` into
  fixed-point ``(price, size)`` tuples;
* :data:`depth_frame` reads a whole Binance depth-diff frame into its ids and
  fixed-point levels in one pass (``None`` without the extension; the feed then
  parses every frame with orjson and converts with :func:`fixed_levels`, the
  reference);
* :func:`top_levels` walks a lazily-deleted heap for a book's depth view;
* :data:`apply_side` applies one side of a diff to a book's dict and heap
  (``None`` without the extension; :meth:`~kernel.book.l2.L2Book.apply` then
  runs its own loop, the reference).

The pure-Python functions here are the reference: ``kernel/book/_accel.c``
computes the same results (``tests/book/test_accel.py`` and
``tests/book/test_depth_frame.py`` check both on generated and recorded input)
and hands anything unusual back to them. ``pip install -e .``
builds the extension; without a C compiler the install still succeeds and
these fallbacks run. Setting ``TRADEKERNEL_PURE_PYTHON=1`` before the import
forces the fallbacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

from tradekernel_sdk.fixedpoint import FixedConverter
from tradekernel_sdk.types import Level

__all__ = [
    "COMPILED",
    "DepthFrame",
    "apply_side",
    "depth_frame",
    "fixed_levels",
    "python_fixed_levels",
    "python_heap_top",
    "python_top_levels",
    "top_levels",
]


def python_fixed_levels(raw: Any, prices: FixedConverter, sizes: FixedConverter) -> list[Level]:
    """Convert ``[["price", "size"], ...]`` to fixed-point pairs (memoised per string)."""
    return [(prices[price], sizes[size]) for price, size in raw]


def python_heap_top(heap: list[int], levels: dict[int, int], depth: int, sign: int) -> list[int]:
    """Return the ``depth`` smallest live keys of a heap, smallest first, without a full scan.

    Explores the heap from its root in key order (a heap of candidate
    positions), skipping deleted and repeated prices; ``sign`` is -1 for a heap
    of negated prices. Costs O(depth log depth) plus the stale entries met.
    """
    size = len(heap)
    found: list[int] = []
    if not size:
        return found
    seen: set[int] = set()
    frontier = [(heap[0], 0)]
    while frontier and len(found) < depth:
        key, index = heappop(frontier)
        price = key * sign
        if price in levels and key not in seen:
            seen.add(key)
            found.append(key)
        child = 2 * index + 1
        if child < size:
            heappush(frontier, (heap[child], child))
            if child + 1 < size:
                heappush(frontier, (heap[child + 1], child + 1))
    return found


def python_top_levels(
    heap: list[int], levels: dict[int, int], depth: int, sign: int
) -> list[Level]:
    """Return the ``(price, size)`` of the ``depth`` best live prices, best first."""
    prices = [key * sign for key in python_heap_top(heap, levels, depth, sign)]
    return [(price, levels[price]) for price in prices]


_compiled_levels: Callable[[Any, int, int], list[Level] | None] | None = None
top_levels: Callable[[list[int], dict[int, int], int, int], list[Level]] = python_top_levels
apply_side: Callable[[dict[int, int], list[int], Any, int], bool] | None = None
"""``apply_side(levels, heap, updates, sign)``: True when applied, False when declined."""

DepthFrame = tuple[str, int, int, int, int | None, list[Level], list[Level]]
"""A depth diff read by :data:`depth_frame`: stream, E, U, u, pu (None on spot), bids, asks."""
depth_frame: Callable[[bytes, dict[str, tuple[int, int]]], DepthFrame | None] | None = None
"""``depth_frame(payload, precisions)``: the frame read, or None when orjson has to parse it.

``precisions`` maps a stream name to its instrument's (price, size) precisions;
the values are those ``orjson.loads`` and :func:`fixed_levels` give.
"""

if not os.environ.get("TRADEKERNEL_PURE_PYTHON"):
    try:
        from kernel.book import _accel
    except ImportError:
        pass
    else:
        _compiled_levels = _accel.fixed_levels
        top_levels = _accel.top_levels
        apply_side = _accel.apply_side
        depth_frame = _accel.depth_frame

COMPILED: bool = _compiled_levels is not None
"""Whether the compiled helpers are in use."""


def fixed_levels(raw: Any, prices: FixedConverter, sizes: FixedConverter) -> list[Level]:
    """Convert ``[["price", "size"], ...]`` to fixed-point pairs at the converters' precisions.

    The compiled path converts plain decimals directly; any list it declines
    (a sign, an odd shape, a malformed string) goes through the converters,
    which give the same values and raise the same errors.
    """
    if _compiled_levels is not None:
        converted = _compiled_levels(raw, prices.precision, sizes.precision)
        if converted is not None:
            return converted
    return [(prices[price], sizes[size]) for price, size in raw]
