"""Decimal strings convert to fixed-point integers exactly, or not at all."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError, from_fixed, to_fixed


@pytest.mark.parametrize(
    ("text", "precision", "expected"),
    [
        ("61737.63000000", 2, 6173763),
        ("61737.63000000", 8, 6173763000000),
        ("0.00000000", 8, 0),
        ("1", 3, 1000),
        ("1.", 2, 100),
        ("1.2", 5, 120000),
        ("-1.25", 2, -125),
        ("007.10", 1, 71),
        ("0.1", 1, 1),
    ],
)
def test_to_fixed_is_exact(text: str, precision: int, expected: int) -> None:
    assert to_fixed(text, precision) == expected


def test_float_round_trip_hazard_does_not_apply() -> None:
    # float("0.1") * 10 ** 17 is not an integer; the fixed-point conversion is.
    assert to_fixed("0.10000000000000001", 17) == 10000000000000001


@pytest.mark.parametrize(
    "text", ["1_000", "1e5", " 1", "1 ", "1.2.3", "", ".5", "+1", "١٢", "0x10", "nan", "inf"]
)
def test_anything_but_a_plain_decimal_is_refused(text: str) -> None:
    with pytest.raises(FixedPointError):
        to_fixed(text, 2)


def test_more_significant_decimals_than_precision_is_refused_not_rounded() -> None:
    with pytest.raises(FixedPointError, match="more than 5 significant decimals"):
        to_fixed("25.42618900", 5)
    assert to_fixed("25.42610000", 5) == 2542610


@pytest.mark.parametrize("value", [61000.5, 1, None, b"1.0"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(FixedPointError):
        to_fixed(value, 2)  # type: ignore[arg-type]


@given(
    st.decimals(
        min_value=Decimal("-1e12"),
        max_value=Decimal("1e12"),
        places=8,
        allow_nan=False,
        allow_infinity=False,
    ),
    st.integers(min_value=8, max_value=12),
)
def test_conversion_agrees_with_decimal_arithmetic(value: Decimal, precision: int) -> None:
    text = format(value, "f")
    fixed = to_fixed(text, precision)
    assert Decimal(fixed).scaleb(-precision) == value
    assert Decimal(from_fixed(fixed, precision)) == value


@given(st.integers(min_value=-(10**20), max_value=10**20), st.integers(min_value=0, max_value=12))
def test_from_fixed_round_trips(value: int, precision: int) -> None:
    assert to_fixed(from_fixed(value, precision), precision) == value


def test_converter_memoises_and_is_bounded() -> None:
    converter = FixedConverter(2, max_entries=3)
    assert converter["1.50"] == 150
    assert converter("2.5") == 250
    assert "1.50" in converter
    converter["3"]
    converter["4"]
    assert len(converter) <= 3
    with pytest.raises(FixedPointError):
        converter["1.234"]
    assert "1.234" not in converter
