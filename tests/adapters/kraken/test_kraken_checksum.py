"""The Kraken book checksum reproduces the worked examples of Kraken's own guides."""

from __future__ import annotations

from kraken_frames import (
    DOC_V1_ASKS,
    DOC_V1_BIDS,
    DOC_V1_CHECKSUM,
    DOC_V1_VOLUME,
    DOC_V2_ASKS,
    DOC_V2_BIDS,
    DOC_V2_CHECKSUM,
)

from kernel.adapters.kraken import kraken_checksum, level_token


def test_a_level_loses_its_decimal_point_and_leading_zeros() -> None:
    # The steps spelled out in both guides (v1: "0.05000" -> "5000"; v2: "45285.2"
    # with "0.00100000" -> "452852100000").
    assert level_token("0.05000", "0.00000304") == "5000304"
    assert level_token("45285.2", "0.00100000") == "452852100000"


def test_v1_documentation_example() -> None:
    # https://docs.kraken.com/api/docs/guides/spot-ws-book-v1
    asks = [(price, DOC_V1_VOLUME) for price in DOC_V1_ASKS]
    bids = [(price, DOC_V1_VOLUME) for price in DOC_V1_BIDS]
    assert kraken_checksum(asks, bids) == DOC_V1_CHECKSUM


def test_v2_documentation_example() -> None:
    # https://docs.kraken.com/api/docs/guides/spot-ws-book-v2
    assert kraken_checksum(DOC_V2_ASKS, DOC_V2_BIDS) == DOC_V2_CHECKSUM


def test_only_the_best_ten_levels_a_side_count() -> None:
    asks = [*DOC_V2_ASKS, ("45300.0", "9.00000000")]
    bids = [*DOC_V2_BIDS, ("45270.0", "9.00000000")]
    assert kraken_checksum(asks, bids) == DOC_V2_CHECKSUM


def test_the_strings_count_not_the_numbers() -> None:
    # 0.1 and 0.10000000 are the same quantity but not the same checksum input.
    asks = [("45285.2", "0.001"), *DOC_V2_ASKS[1:]]
    assert kraken_checksum(asks, DOC_V2_BIDS) != DOC_V2_CHECKSUM


def test_asks_come_before_bids() -> None:
    swapped = kraken_checksum(DOC_V2_BIDS, DOC_V2_ASKS)
    assert swapped != DOC_V2_CHECKSUM
