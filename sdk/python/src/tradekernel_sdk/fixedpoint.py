"""Exact conversion between venue decimal strings and fixed-point integers.

A price or size is held as an ``int`` scaled by ``10**precision`` of its
instrument: ``"61737.63"`` at precision 2 is ``6173763``. Conversion never goes
through ``float``; a string with more significant decimals than the precision
allows is an error, not a rounding.
"""

from __future__ import annotations

import re

__all__ = [
    "FixedPointError",
    "FixedConverter",
    "decimal_places",
    "from_fixed",
    "to_fixed",
]

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]*)?")


class FixedPointError(ValueError):
    """A decimal string cannot be represented exactly at the requested precision."""


def to_fixed(text: str, precision: int) -> int:
    """Return ``text`` as an integer number of ``10**-precision`` units, exactly."""
    if not _DECIMAL.fullmatch(text):
        raise FixedPointError(f"not a plain decimal number: {text!r}")
    whole, _, frac = text.partition(".")
    if len(frac) > precision:
        excess = frac[precision:]
        if excess.strip("0"):
            raise FixedPointError(f"{text!r} has more than {precision} significant decimals")
        frac = frac[:precision]
    return int(whole + frac.ljust(precision, "0"))


def from_fixed(value: int, precision: int) -> str:
    """Return the canonical decimal string of a fixed-point integer (``precision`` decimals)."""
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(precision + 1, "0")
    if precision == 0:
        return sign + digits
    return f"{sign}{digits[:-precision]}.{digits[-precision:]}"


def decimal_places(text: str) -> int:
    """Return how many digits follow the decimal point in ``text``."""
    _, _, frac = text.partition(".")
    return len(frac)


class FixedConverter:
    """Convert decimal strings at one precision, memoising repeated strings.

    Venue streams repeat the same price strings constantly (a level is updated
    many times), so a bounded dictionary turns most conversions into one lookup.
    Call the instance, or use :attr:`cache` ``.get`` inline in a hot loop and fall
    back to :meth:`convert` on a miss.
    """

    __slots__ = ("precision", "cache", "max_entries")

    def __init__(self, precision: int, max_entries: int = 1 << 17) -> None:
        if precision < 0:
            raise ValueError("precision must be >= 0")
        self.precision = precision
        self.cache: dict[str, int] = {}
        self.max_entries = max_entries

    def convert(self, text: str) -> int:
        """Convert ``text`` (cache miss path) and remember the result."""
        value = to_fixed(text, self.precision)
        cache = self.cache
        if len(cache) >= self.max_entries:
            cache.clear()
        cache[text] = value
        return value

    def __call__(self, text: str) -> int:
        value = self.cache.get(text)
        if value is None:
            return self.convert(text)
        return value
