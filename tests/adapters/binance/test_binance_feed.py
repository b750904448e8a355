"""The Binance feed keeps books that agree with every oracle in real recorded data."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from binance_frames import frame, load, run_feed

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import BinanceFeed, Market
from kernel.book import L2Book
from kernel.bus import Bus
from tradekernel_sdk.types import BookDelta, BookState, BookStatus


def _is_depth(item: RawFrame) -> bool:
    return b"depthUpdate" in item.payload


def _snapshot_frame(book: L2Book, feed: BinanceFeed, symbol: str, recv_ns: int) -> RawFrame:
    """A REST depth snapshot carrying a reference book's exact state."""
    instrument = feed.instrument(symbol)
    assert instrument is not None
    body = {
        "lastUpdateId": book.sequence,
        "bids": [[instrument.price_text(p), instrument.size_text(s)] for p, s in book.bid_levels()],
        "asks": [[instrument.price_text(p), instrument.size_text(s)] for p, s in book.ask_levels()],
    }
    return RawFrame(recv_ns, orjson.dumps(body), f"rest:depth:{symbol}")


def test_bundled_spot_stream_syncs_and_matches_every_book_ticker(spot_btc: list[RawFrame]) -> None:
    feed, recorder = run_feed(spot_btc)
    stats = feed.stats
    assert stats.frames == len(spot_btc)
    assert stats.gaps == 0
    assert stats.oracle_mismatches == 0
    assert stats.crossed_books == 0
    assert stats.malformed_frames == 0
    assert stats.oracle_checks > 100
    assert feed.book_state("BTCUSDT") is BookState.VALID
    statuses = recorder.of("BookStatus")
    assert [status.state for status in statuses] == [BookState.VALID]


def test_book_applies_diffs_exactly_as_received(spot_btc: list[RawFrame]) -> None:
    feed, recorder = run_feed(spot_btc)
    instrument = feed.instrument("BTCUSDT")
    assert instrument is not None
    deltas = recorder.of("BookDelta")
    first = deltas[0]
    raw = next(
        orjson.loads(item.payload)["data"]
        for item in spot_btc
        if _is_depth(item) and orjson.loads(item.payload)["data"]["u"] == first.sequence
    )
    assert [instrument.price_text(p) for p, _ in first.bids] == [p for p, _ in raw["b"]]
    assert [instrument.size_text(s) for _, s in first.bids] == [s for _, s in raw["b"]]
    assert first.first_sequence == raw["U"]


def test_dropped_diff_is_detected_at_the_next_diff_and_book_resyncs(
    spot_btc: list[RawFrame],
) -> None:
    depth_positions = [index for index, item in enumerate(spot_btc) if _is_depth(item)]
    dropped = depth_positions[200]
    next_diff = depth_positions[201]
    resync_at = depth_positions[260]

    reference, _ = run_feed(spot_btc[: resync_at + 1])
    reference_book = reference.book("BTCUSDT")
    assert reference_book is not None
    snapshot = _snapshot_frame(reference_book, reference, "BTCUSDT", spot_btc[resync_at].recv_ns)

    frames = spot_btc[:dropped] + spot_btc[dropped + 1 : resync_at + 1] + [snapshot]
    frames += spot_btc[resync_at + 1 :]

    bus = Bus()
    feed = BinanceFeed(bus, "spot")
    published: list[object] = []
    bus.subscribe("data.>", published.append)
    for index, item in enumerate(frames):
        feed.on_frame(item)
        if index == next_diff - 1:  # the first diff after the dropped one
            assert feed.book_state("BTCUSDT") is BookState.INVALID
            assert feed.stats.gaps == 1
            invalid_at = len(published)

    assert feed.stats.resyncs == 1
    assert feed.stats.oracle_mismatches == 0
    assert feed.book_state("BTCUSDT") is BookState.VALID
    statuses = [item for item in published if isinstance(item, BookStatus)]
    assert [status.state for status in statuses] == [
        BookState.VALID,
        BookState.INVALID,
        BookState.VALID,
    ]
    assert "gap" in statuses[1].reason

    revalidated_at = published.index(statuses[2])
    while_invalid = published[invalid_at:revalidated_at]
    assert not [item for item in while_invalid if isinstance(item, BookDelta)]

    full, _ = run_feed(spot_btc)
    book = feed.book("BTCUSDT")
    expected = full.book("BTCUSDT")
    assert book is not None and expected is not None
    assert book.bids == expected.bids
    assert book.asks == expected.asks


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpd', "truncated JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'{"stream":"btcusdt@kline_1m","data":{"s":"BTCUSDT"}}', "unknown stream"),
        (
            b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":61000.5,"q":"1","m":true}}',
            "price as a number",
        ),
        (
            b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"1e5","q":"1","m":true}}',
            "exponent notation",
        ),
        (b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1"}}', "missing fields"),
        (b'{"stream":"btcusdt@depth@100ms","data":{"U":"1","u":2,"b":[],"a":[]}}', "U as string"),
        (b'{"hello":"world"}', "no envelope"),
        (b"", "empty"),
    ],
)
def test_malformed_frame_is_counted_and_replay_continues(
    spot_btc: list[RawFrame], payload: bytes, reason: str
) -> None:
    middle = len(spot_btc) // 2
    frames = [
        *spot_btc[:middle],
        RawFrame(spot_btc[middle].recv_ns, payload, "test"),
        *spot_btc[middle:],
    ]
    feed, _ = run_feed(frames)
    assert feed.stats.malformed_frames == 1, reason
    assert feed.stats.frames == len(frames)
    assert feed.stats.gaps == 0
    assert feed.book_state("BTCUSDT") is BookState.VALID


def test_diff_with_invalid_level_is_dropped_and_the_gap_invalidates_the_book(
    spot_btc: list[RawFrame],
) -> None:
    position = [index for index, item in enumerate(spot_btc) if _is_depth(item)][100]
    broken = spot_btc[position].payload.replace(b'"b":[["', b'"b":[["x', 1)
    frames = [
        *spot_btc[:position],
        spot_btc[position]._replace(payload=broken),
        *spot_btc[position + 1 :],
    ]
    feed, recorder = run_feed(frames)
    assert feed.stats.malformed_frames == 1
    assert feed.stats.gaps == 1
    assert feed.book_state("BTCUSDT") is BookState.INVALID
    assert recorder.of("BookStatus")[-1].state is BookState.INVALID


def _futures_diff(
    first: int, last: int, previous: int, bids: list[list[str]], asks: list[list[str]]
) -> dict[str, object]:
    return {
        "stream": "btcusdt@depth@0ms",
        "data": {
            "e": "depthUpdate",
            "E": 1,
            "T": 1,
            "s": "BTCUSDT",
            "U": first,
            "u": last,
            "pu": previous,
            "b": bids,
            "a": asks,
        },
    }


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_sync_uses_pu_chain_and_accepts_a_diff_straddling_the_snapshot(
    market: Market,
) -> None:
    bus = Bus()
    feed = BinanceFeed(bus, market)
    feed.on_frame(frame(_futures_diff(90, 95, 89, [["100.00", "1.000"]], [])))
    feed.on_frame(frame(_futures_diff(96, 104, 95, [["100.10", "2.000"]], [])))
    feed.on_frame(
        frame(
            {"lastUpdateId": 100, "bids": [["99.90", "5.000"]], "asks": [["100.50", "1.000"]]},
            source="rest:depth:BTCUSDT",
        )
    )
    # 90..95 is older than the snapshot and dropped; 96..104 straddles it and applies.
    assert feed.book_state("BTCUSDT") is BookState.VALID
    book = feed.book("BTCUSDT")
    assert book is not None
    assert book.bid_levels() == [(10010, 2000), (9990, 5000)]
    # Futures ids are global: U jumps, but pu links to the previous u.
    feed.on_frame(frame(_futures_diff(180, 190, 104, [], [["100.40", "0.500"]])))
    assert feed.book_state("BTCUSDT") is BookState.VALID
    feed.on_frame(frame(_futures_diff(191, 200, 189, [], [])))
    assert feed.book_state("BTCUSDT") is BookState.INVALID
    assert feed.stats.gaps == 1


def test_spot_rule_rejects_pu_style_continuity() -> None:
    feed = BinanceFeed(Bus(), "spot")
    feed.on_frame(
        frame(
            {"lastUpdateId": 10, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]},
            source="rest:depth:ABCUSDT",
        )
    )
    depth = {
        "stream": "abcusdt@depth@100ms",
        "data": {"e": "depthUpdate", "E": 1, "s": "ABCUSDT", "U": 11, "u": 12, "b": [], "a": []},
    }
    feed.on_frame(frame(depth))
    assert feed.book_state("ABCUSDT") is BookState.VALID
    depth["data"] = {**depth["data"], "U": 14, "u": 15}  # type: ignore[dict-item]
    feed.on_frame(frame(depth))
    assert feed.book_state("ABCUSDT") is BookState.INVALID


def test_crossed_book_is_invalidated_and_counted() -> None:
    bus = Bus()
    feed = BinanceFeed(bus, "spot")
    statuses: list[BookStatus] = []
    bus.subscribe("data.status.>", statuses.append)
    feed.on_frame(
        frame(
            {"lastUpdateId": 10, "bids": [["1.00", "1"]], "asks": [["2.00", "1"]]},
            source="rest:depth:ABCUSDT",
        )
    )
    crossing = {
        "stream": "abcusdt@depth@100ms",
        "data": {
            "e": "depthUpdate",
            "E": 1,
            "s": "ABCUSDT",
            "U": 11,
            "u": 11,
            "b": [["2.50", "1"]],
            "a": [],
        },
    }
    feed.on_frame(frame(crossing))
    assert feed.stats.crossed_books == 1
    assert feed.book_state("ABCUSDT") is BookState.INVALID
    assert statuses[-1].reason.startswith("crossed")


def test_book_ticker_disagreeing_with_the_book_invalidates_it(spot_btc: list[RawFrame]) -> None:
    feed, _ = run_feed(spot_btc)
    book = feed.book("BTCUSDT")
    assert book is not None
    lie = {
        "stream": "btcusdt@bookTicker",
        "data": {
            "u": book.sequence,
            "s": "BTCUSDT",
            "b": "1.00000000",
            "B": "1.00000000",
            "a": "2.00000000",
            "A": "1.00000000",
        },
    }
    feed.on_frame(frame(lie))
    assert feed.stats.oracle_mismatches == 1
    assert feed.book_state("BTCUSDT") is BookState.INVALID


def test_snapshot_without_symbol_from_unknown_source_is_malformed() -> None:
    feed = BinanceFeed(Bus(), "spot")
    feed.on_frame(frame({"lastUpdateId": 1, "bids": [], "asks": []}, source="somewhere"))
    assert feed.stats.malformed_frames == 1


def test_unknown_symbol_gets_precision_from_its_strings() -> None:
    feed = BinanceFeed(Bus(), "spot")
    feed.on_frame(
        frame(
            {
                "stream": "xyzusdt@trade",
                "data": {
                    "s": "XYZUSDT",
                    "p": "0.12345600",
                    "q": "10.00",
                    "m": False,
                    "t": 1,
                    "T": 1,
                },
            }
        )
    )
    instrument = feed.instrument("XYZUSDT")
    assert instrument is not None
    assert instrument.price_precision == 8
    assert feed.stats.trades == 1


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("market", "folder", "symbol"),
    [
        ("spot", "binance_spot", "btcusdt"),
        ("spot", "binance_spot", "ethusdt"),
        ("usdm", "binance_usdm", "btcusdt"),
        ("usdm", "binance_usdm", "ethusdt"),
    ],
)
def test_every_shared_stream_has_no_gap_and_no_oracle_mismatch(
    shared_data: Path, market: str, folder: str, symbol: str
) -> None:
    paths = sorted((shared_data / "orderbook" / folder).glob(f"{symbol}_*.gz"))
    feed, _ = run_feed(load(paths), market)
    stats = feed.stats
    print(
        f"{folder}/{symbol}: {stats.book_updates} diffs, {stats.level_updates} levels, "
        f"{stats.oracle_checks} bookTicker checks"
    )
    assert stats.gaps == 0
    assert stats.oracle_mismatches == 0
    assert stats.crossed_books == 0
    assert stats.malformed_frames == 0
    assert stats.oracle_checks > 500
    assert feed.book_state(symbol.upper()) is BookState.VALID
