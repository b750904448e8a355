"""The OKX v5 book checksum: CRC32 over the best 25 levels, interleaved, strings as received."""

from __future__ import annotations

import zlib

import orjson

from kernel.adapters.base import RawFrame
from kernel.adapters.okx import okx_checksum
from kernel.adapters.okx.checksum import CHECKSUM_DEPTH, checksum_of_pairs, signed_crc32


def test_matches_the_venue_documentation_examples() -> None:
    bids = [["3366.1", "7", "0", "3"], ["3366", "6", "3", "4"]]
    asks = [["3366.8", "9", "10", "3"], ["3368", "8", "3", "4"]]
    assert okx_checksum(bids, asks) == -1881014294


def test_a_shorter_side_stops_contributing_when_it_runs_out() -> None:
    bids = [["3366.1", "7", "0", "3"]]
    asks = [["3366.8", "9", "10", "3"], ["3368", "8", "3", "4"], ["3372", "8", "3", "4"]]
    assert okx_checksum(bids, asks) == 831078360
    assert okx_checksum(bids, asks) == signed_crc32("3366.1:7:3366.8:9:3368:8:3372:8")


def test_uses_the_strings_as_received() -> None:
    assert okx_checksum([["30316", "1"]], [["30317", "2"]]) != okx_checksum(
        [["30316.0", "1"]], [["30317", "2"]]
    )


def test_only_the_best_25_levels_of_each_side_count() -> None:
    bids = [[str(1000 - i), "1"] for i in range(40)]
    asks = [[str(1001 + i), "1"] for i in range(40)]
    deeper = [*bids[:CHECKSUM_DEPTH], ["1", "99"]]
    assert okx_checksum(bids, asks) == okx_checksum(deeper, asks[:CHECKSUM_DEPTH])


def test_is_a_signed_32_bit_crc32() -> None:
    text = "1:2:3:4"
    unsigned = zlib.crc32(text.encode())
    assert signed_crc32(text) % 2**32 == unsigned
    assert -(2**31) <= signed_crc32(text) < 2**31
    assert checksum_of_pairs(["1:2"], ["3:4"]) == signed_crc32(text)


def test_every_snapshot_in_the_capture_carries_its_own_checksum(
    okx_frames: list[RawFrame],
) -> None:
    snapshots = 0
    for frame in okx_frames:
        message = orjson.loads(frame.payload)
        if message.get("action") != "snapshot":
            continue
        for item in message["data"]:
            assert okx_checksum(item["bids"], item["asks"]) == item["checksum"]
            snapshots += 1
    assert snapshots == 3
