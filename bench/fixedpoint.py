"""``fixedpoint``: converting Binance's price and size strings, ours against Decimal and float.

The strings are the real ones of the recordings, in stream order: depth diff
and snapshot levels, bookTicker prices and sizes, trade prices and sizes,
grouped per stream and field (a feed keeps one converter per symbol and field)
and capped per group. Every contender converts every group; each run gets
fresh ``str`` objects, as a feed does from each parsed frame (a string caches
its hash, so reusing the same objects would flatter the memo). Contenders:

* ``FixedConverter`` (the kernel's, memoised; a fresh memo per run);
* ``to_fixed`` (the kernel's validated conversion, no memo);
* ``decimal.Decimal(text)`` and ``float(text)`` (the usual alternatives);
* ``int(text.replace(".", ""))``, a lower bound for a C-level conversion
  without validation (right only because Binance sends exactly the precision's
  decimals; checked before timing);
* a sketch of a validated fast path without memo (:func:`checked_replace`):
  when the text has exactly ``precision`` decimals and only ASCII digits, one
  ``replace`` and one ``int``; anything else falls back to ``to_fixed``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from bench.common import (
    Contender,
    Context,
    fmt_int,
    fmt_ns,
    fmt_ratio,
    interleave,
    load_frames,
    note,
    table,
)
from kernel.adapters.binance import KNOWN_INSTRUMENTS, VENUE_NAMES
from tradekernel_sdk.fixedpoint import FixedConverter, to_fixed

NAME = "fixedpoint"

_PER_GROUP = 300_000
_QUICK_PER_GROUP = 30_000

OURS = "FixedConverter (memo)"
OURS_WARM = "FixedConverter, warm memo + same str objects"
TO_FIXED = "to_fixed (no memo)"
DECIMAL = "decimal.Decimal"
FLOAT = "float"
REPLACE = "int(str.replace) (lower bound)"
SKETCH = "sketch: checked replace + int"

_Group = tuple[str, int, list[str]]  # label, precision, strings


def checked_replace(text: str, precision: int) -> int:
    """Convert like ``to_fixed``, fast when ``text`` has exactly ``precision`` decimals."""
    dot = len(text) - precision - 1
    if dot > 0 and text[dot] == ".":
        digits = text.replace(".", "", 1)
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return to_fixed(text, precision)


def _groups(ctx: Context, per_group: int) -> list[_Group]:
    groups: list[_Group] = []
    for market, files in ctx.data.markets().items():
        venue = VENUE_NAMES["spot" if market == "spot" else "usdm"]
        for symbol, paths in files.items():
            instrument = KNOWN_INSTRUMENTS[venue][symbol]
            prices: list[str] = []
            sizes: list[str] = []
            for frame in load_frames(paths, ctx.line_limit):
                if len(prices) >= per_group and len(sizes) >= per_group:
                    break
                message = orjson.loads(frame.payload)
                data = message.get("data", message)
                for key in ("bids", "asks", "b", "a"):
                    levels = data.get(key)
                    if type(levels) is list:
                        for price, size in levels:
                            prices.append(price)
                            sizes.append(size)
                    elif type(levels) is str:  # bookTicker: b, a are prices; B, A sizes
                        prices.append(levels)
                        sizes.append(data[key.upper()])
                if "p" in data and "q" in data:  # trade
                    prices.append(data["p"])
                    sizes.append(data["q"])
            name = f"{market}:{symbol}"
            groups.append((f"{name} prices", instrument.price_precision, prices[:per_group]))
            groups.append((f"{name} sizes", instrument.size_precision, sizes[:per_group]))
    return groups


def _fresh(groups: list[_Group]) -> list[_Group]:
    """Return the groups with new string objects (no cached hashes), as parsing makes them."""
    return [
        (label, precision, orjson.loads(orjson.dumps(texts))) for label, precision, texts in groups
    ]


def _contender(kind: str, groups: list[_Group]) -> Callable[[], Callable[[], object]]:
    def prepare() -> Callable[[], object]:
        work = groups if kind == OURS_WARM else _fresh(groups)
        converters = [FixedConverter(precision) for _, precision, _ in work]
        if kind == OURS_WARM:
            for converter, (_, _, texts) in zip(converters, work, strict=True):
                for text in texts:
                    converter[text]

        def body() -> None:
            for converter, (_, precision, texts) in zip(converters, work, strict=True):
                if kind in (OURS, OURS_WARM):
                    for text in texts:
                        _value = converter[text]
                elif kind == TO_FIXED:
                    for text in texts:
                        _value = to_fixed(text, precision)
                elif kind == DECIMAL:
                    for text in texts:
                        _decimal = Decimal(text)
                elif kind == FLOAT:
                    for text in texts:
                        _float = float(text)
                elif kind == SKETCH:
                    for text in texts:
                        _value = checked_replace(text, precision)
                else:
                    for text in texts:
                        _value = int(text.replace(".", ""))

        return body

    return prepare


def _check(groups: list[_Group]) -> bool:
    """Check that every contender converts to the same value; return whether REPLACE is right."""
    replace_ok = True
    for label, precision, texts in groups:
        converter = FixedConverter(precision)
        for text in set(texts):
            value = to_fixed(text, precision)
            if (
                converter[text] != value
                or checked_replace(text, precision) != value
                or Decimal(text).scaleb(precision) != value
            ):
                raise AssertionError(f"{label}: {text!r} converts inconsistently")
            if float(text) != float(Decimal(value).scaleb(-precision)):
                raise AssertionError(f"{label}: float({text!r}) disagrees")
            _, _, frac = text.partition(".")
            if len(frac) != precision or int(text.replace(".", "")) != value:
                replace_ok = False
    return replace_ok


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    per_group = _QUICK_PER_GROUP if ctx.quick else _PER_GROUP
    groups = _groups(ctx, per_group)
    total = sum(len(texts) for _, _, texts in groups)
    uniques = {label: len(set(texts)) for label, _, texts in groups}
    print(
        f"\n[fixedpoint] {fmt_int(total)} real strings in {len(groups)} groups "
        f"(stream order, at most {fmt_int(per_group)} per group); "
        f"{fmt_int(sum(uniques.values()))} distinct"
    )
    replace_ok = _check(groups)
    print(
        "  verified: FixedConverter, to_fixed, the sketch, Decimal and float agree on every "
        "distinct string"
    )
    kinds = [OURS, OURS_WARM, TO_FIXED, DECIMAL, FLOAT, SKETCH]
    if replace_ok:
        kinds.append(REPLACE)
    else:
        print(f"  SKIPPED {REPLACE}: some strings do not carry exactly the precision's decimals")
    timings = interleave([Contender(kind, _contender(kind, groups)) for kind in kinds], ctx.runs)
    ns = {kind: timings.median(kind) / total * 1e9 for kind in kinds}
    figures: dict[str, Any] = {}
    rows = []
    for kind in kinds:
        figures[kind] = {
            "ns_per_conversion": ns[kind],
            "ours_speedup": ns[kind] / ns[OURS],
            "runs_s": timings.seconds[kind],
        }
        rows.append([kind, fmt_ns(ns[kind]), fmt_ratio(ns[kind] / ns[OURS])])
    table(
        f"fixedpoint: ns per string (median of {ctx.runs} interleaved runs, loop included)",
        ["conversion", "per string", "ours faster by"],
        rows,
    )
    note(
        "'warm memo + same str objects' reuses hashed strings and a filled memo: the "
        "micro-benchmark view, not what a feed sees"
    )
    print(
        f"  ours vs Decimal: {ns[DECIMAL] / ns[OURS]:.2f}x, "
        f"ours vs float: {ns[FLOAT] / ns[OURS]:.2f}x (above 1: ours is faster)"
    )
    return {
        "strings": total,
        "distinct": uniques,
        "per_group_cap": per_group,
        "contenders": figures,
        "ours_vs_decimal": ns[DECIMAL] / ns[OURS],
        "ours_vs_float": ns[FLOAT] / ns[OURS],
    }
