"""Exact conversion between venue decimal strings and fixed-point integers.

A price or size is held as an ``int`` scaled by ``10**precision`` of its
instrument: ``"61737.63"`` at precision 2 is ``6173763``. Conversion never goes
through ``float``; a string with more significant decimals than the precision
allows is an error, not a rounding.
"""

from __future__ import annotations

import re

__all__ = [
    "FixedConverter",
    "FixedPointError",
    "decimal_places",
    "from_fixed",
    "to_fixed",
]

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]*)?")


class FixedPointError(ValueError):
    """A decimal string cannot be represented exactly at the requested precision."""


def to_fixed(text: str, precision: int) -> int:
    """Return ``text`` as an integer number of ``10**-precision`` units, exactly."""
    if type(text) is not str:
        raise FixedPointError(f"expected a decimal string, got {type(text).__name__} {text!r}")
    whole, dot, frac = text.partition(".")
    # Fast path for what venues send: unsigned ASCII digits. (str.isdigit alone
    # would admit other scripts' digits, and int() alone would admit "1_0" or " 1".)
    if not (whole.isascii() and whole.isdigit() and (frac.isdigit() or not frac)):
        if not _DECIMAL.fullmatch(text):
            raise FixedPointError(f"not a plain decimal number: {text!r}")
    elif dot and not frac.isascii():
        raise FixedPointError(f"not a plain decimal number: {text!r}")
    excess = len(frac) - precision
    if excess == 0:
        return int(whole + frac)
    if excess > 0:
        if frac[precision:].strip("0"):
            raise FixedPointError(f"{text!r} has more than {precision} significant decimals")
        return int(whole + frac[:precision])
    return int(whole + frac + "0" * -excess)


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


class FixedConverter(dict[str, int]):
    """Convert decimal strings at one precision, memoising repeated strings.

    Venue streams repeat the same strings constantly (a price level is updated
    many times), so most conversions are one dictionary lookup. Index it like a
    dict (``converter["61737.63"]``): a miss converts, remembers and returns.
    The memo is cleared when it reaches ``max_entries``.
    """

    __slots__ = ("max_entries", "precision")

    def __init__(self, precision: int, max_entries: int = 1 << 17) -> None:
        super().__init__()
        if precision < 0:
            raise ValueError("precision must be >= 0")
        self.precision = precision
        self.max_entries = max_entries

    def __missing__(self, text: str) -> int:
        value = to_fixed(text, self.precision)
        if len(self) >= self.max_entries:
            self.clear()
        self[text] = value
        return value

    def __call__(self, text: str) -> int:
        return self[text]
