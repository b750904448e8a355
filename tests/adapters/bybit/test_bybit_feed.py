"""The Bybit v5 feed: snapshots reset, ``u`` chains deltas, books are per connection and topic.

Bybit's book stream carries no checksum, so these sequences are built here in
the shape of the v5 "Orderbook" page's examples
(https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook).
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from kernel.adapters.base import RawFrame
from kernel.adapters.bybit import BybitFeed, market_of
from kernel.book import L2Book
from kernel.bus.bus import Bus
from kernel.recording import RecordingWriter
from tradekernel_sdk.types import (
    AggressorSide,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Quote,
    Trade,
)

SPOT = "wss://stream.bybit.com/v5/public/spot"
LINEAR = "wss://stream.bybit.com/v5/public/linear"
TOPIC = "orderbook.50.BTCUSDT"
FIXTURES = Path(__file__).parent / "fixtures"

Levels = list[tuple[str, str]]


def book_message(
    kind: str, update_id: int, bids: Levels, asks: Levels, topic: str = TOPIC
) -> bytes:
    symbol = topic.rpartition(".")[2]
    return orjson.dumps(
        {
            "topic": topic,
            "type": kind,
            "ts": 1671179923028 + update_id,
            "data": {
                "s": symbol,
                "b": [list(level) for level in bids],
                "a": [list(level) for level in asks],
                "u": update_id,
                "seq": 22520573250 + update_id,
            },
            "cts": 1671179923020 + update_id,
        }
    )


BIDS = [("17440.00", "40.833"), ("17439.50", "0.513")]
ASKS = [("17440.50", "78.815"), ("17441.00", "8.858")]


class Recorder:
    """Every market event published, and the books a subscriber rebuilds from them."""

    def __init__(self, bus: Bus) -> None:
        self.events: list[Any] = []
        self.rebuilt: dict[str, L2Book] = {}
        bus.subscribe("data.>", self.on_event)

    def on_event(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, BookSnapshot):
            book = self.rebuilt[event.symbol] = L2Book()
            book.load(event.bids, event.asks)
        elif isinstance(event, BookDelta):
            self.rebuilt[event.symbol].apply(event.bids, event.asks)

    def of(self, kind: type[Any], symbol: str | None = None) -> list[Any]:
        return [
            e for e in self.events if isinstance(e, kind) and (symbol is None or e.symbol == symbol)
        ]


def run(frames: list[tuple[str, bytes]], **options: Any) -> tuple[BybitFeed, Recorder]:
    bus = Bus()
    recorder = Recorder(bus)
    feed = BybitFeed(bus, **options)
    for index, (source, payload) in enumerate(frames):
        feed.on_frame(RawFrame(1_671_179_923_000_000_000 + index, payload, source))
    return feed, recorder


def fixed(text: str, precision: int) -> int:
    return int(Decimal(text).scaleb(precision))


# -- snapshot and delta ------------------------------------------------------------------


def test_market_comes_from_the_connection_url() -> None:
    assert market_of(SPOT) == "spot"
    assert market_of(LINEAR + "/") == "linear"
    assert market_of("wss://stream.bybit.com/v5/public/option") == "option"
    assert market_of("/data/bybit.jsonl") == ""


def test_snapshot_then_chained_deltas() -> None:
    feed, recorder = run(
        [
            (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
            (
                LINEAR,
                book_message("delta", 101, [], [("17440.50", "78.857"), ("17442.00", "1.510")]),
            ),
            (LINEAR, book_message("delta", 102, [("17440.00", "0")], [])),
        ]
    )
    symbol = "linear:BTCUSDT"
    assert feed.symbols == [symbol]
    assert feed.book_state(symbol) is BookState.VALID
    (snapshot,) = recorder.of(BookSnapshot)
    assert snapshot.sequence == 100
    deltas = recorder.of(BookDelta)
    assert [(d.first_sequence, d.sequence) for d in deltas] == [(101, 101), (102, 102)]
    book = feed.book(symbol)
    assert book is not None
    assert book.best_bid() == (fixed("17439.50", 2), fixed("0.513", 3))
    assert book.asks[fixed("17442.00", 2)] == fixed("1.510", 3)
    assert book.sequence == 102
    assert recorder.rebuilt[symbol].bids == book.bids
    assert recorder.rebuilt[symbol].asks == book.asks
    assert feed.stats.gaps == 0 and feed.stats.malformed_frames == 0


def test_gap_invalidates_asks_for_the_topic_again_and_the_next_snapshot_recovers() -> None:
    requests: list[Any] = []
    feed, recorder = run(
        [
            (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
            (LINEAR, book_message("delta", 102, [("17439.00", "1.000")], [])),  # 101 missing
            (LINEAR, book_message("delta", 103, [("17438.00", "1.000")], [])),  # ignored
            (LINEAR, book_message("snapshot", 200, BIDS, ASKS)),
            (LINEAR, book_message("delta", 201, [("17439.00", "2.000")], [])),
        ],
        on_resync=requests.append,
    )
    symbol = "linear:BTCUSDT"
    assert feed.stats.gaps == 1
    statuses = recorder.of(BookStatus)
    assert [s.state for s in statuses] == [BookState.VALID, BookState.INVALID, BookState.VALID]
    assert statuses[1].reason == "gap: u=102 after u=100"
    assert [(r.connection, r.subject) for r in requests] == [(LINEAR, TOPIC)]
    assert [d.sequence for d in recorder.of(BookDelta)] == [201]
    assert feed.stats.resyncs == 1
    book = feed.book(symbol)
    assert book is not None and fixed("17438.00", 2) not in book.bids


def test_a_snapshot_replaces_the_whole_book() -> None:
    feed, recorder = run(
        [
            (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
            (
                LINEAR,
                book_message("snapshot", 150, [("17400.00", "1.000")], [("17500.00", "2.000")]),
            ),
        ]
    )
    book = feed.book("linear:BTCUSDT")
    assert book is not None
    assert book.bid_levels() == [(fixed("17400.00", 2), fixed("1.000", 3))]
    assert book.ask_levels() == [(fixed("17500.00", 2), fixed("2.000", 3))]
    assert len(recorder.of(BookStatus)) == 1  # it stayed valid throughout
    assert [s.sequence for s in recorder.of(BookSnapshot)] == [100, 150]


def test_u_equal_1_after_a_service_restart_resets_the_book() -> None:
    # "Occasionally, you'll receive "u"=1, which is a snapshot data due to the
    # restart of the service. So please overwrite your local orderbook."
    feed, _ = run(
        [
            (SPOT, book_message("snapshot", 5000, BIDS, ASKS)),
            (SPOT, book_message("delta", 5001, [("17439.00", "1.000")], [])),
            (SPOT, book_message("snapshot", 1, [("17000.00", "1.000")], [("17001.00", "1.000")])),
            (SPOT, book_message("delta", 2, [("16999.00", "3.000")], [])),
        ]
    )
    assert feed.stats.gaps == 0
    book = feed.book("spot:BTCUSDT")
    assert book is not None
    assert sorted(book.bids) == [fixed("16999.00", 2), fixed("17000.00", 2)]
    assert book.sequence == 2


def test_level_1_is_a_quote_and_its_repeated_snapshot_keeps_u() -> None:
    # Linear level 1: a snapshot is pushed again after 3 s without change, same u.
    topic = "orderbook.1.BTCUSDT"
    top = book_message("snapshot", 7, [("17440.00", "40.833")], [("17440.50", "78.815")], topic)
    feed, recorder = run(
        [
            (LINEAR, top),
            (LINEAR, top),
            (LINEAR, book_message("delta", 8, [("17440.00", "41.000")], [], topic)),
        ]
    )
    quotes = recorder.of(Quote)
    assert [q.sequence for q in quotes] == [7, 7, 8]
    assert quotes[-1].bid_size == fixed("41.000", 3)
    assert quotes[-1].ask_price == fixed("17440.50", 2)
    assert recorder.of(BookSnapshot) == [] and recorder.of(BookDelta) == []
    assert feed.book_state_of(LINEAR, topic) is BookState.VALID
    assert feed.symbols == []  # the top of book is not a published book
    assert feed.stats.gaps == 0


def test_spot_and_linear_books_with_the_same_topic_are_kept_apart() -> None:
    spot_bids = [("17000.10", "0.100000")]
    spot_asks = [("17000.20", "0.200000")]
    feed, recorder = run(
        [
            (SPOT, book_message("snapshot", 10, spot_bids, spot_asks)),
            (LINEAR, book_message("snapshot", 900, BIDS, ASKS)),
            (SPOT, book_message("delta", 11, [("17000.00", "1.000000")], [])),
            (LINEAR, book_message("delta", 905, [("17439.00", "1.000")], [])),  # linear gap
            (SPOT, book_message("delta", 12, [("16999.90", "1.000000")], [])),
        ]
    )
    assert feed.symbols == ["linear:BTCUSDT", "spot:BTCUSDT"]
    assert feed.book_state("spot:BTCUSDT") is BookState.VALID
    assert feed.book_state("linear:BTCUSDT") is BookState.INVALID
    spot = feed.book_of(SPOT, TOPIC)
    assert spot is feed.book("spot:BTCUSDT")
    assert spot is not None and len(spot.bids) == 3
    # Each book has its own precision, taken from its own snapshot.
    spot_instrument = feed.instrument("spot:BTCUSDT")
    linear_instrument = feed.instrument("linear:BTCUSDT")
    assert spot_instrument is not None and linear_instrument is not None
    assert (spot_instrument.price_precision, spot_instrument.size_precision) == (2, 6)
    assert (linear_instrument.price_precision, linear_instrument.size_precision) == (2, 3)
    assert [d.sequence for d in recorder.of(BookDelta, "spot:BTCUSDT")] == [11, 12]
    assert [r.connection for r in feed.resync_requests.take()] == [LINEAR]


def test_deltas_before_the_first_snapshot_are_skipped() -> None:
    feed, recorder = run(
        [
            (LINEAR, book_message("delta", 99, [("17439.00", "1.000")], [])),
            (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
        ]
    )
    assert feed.stats.malformed_frames == 0 and feed.stats.gaps == 0
    assert feed.book_state("linear:BTCUSDT") is BookState.VALID
    assert len(recorder.of(BookSnapshot)) == 1


def test_a_crossed_book_is_invalid() -> None:
    feed, _ = run(
        [
            (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
            (LINEAR, book_message("delta", 101, [("17441.00", "1.000")], [])),
        ]
    )
    assert feed.stats.crossed_books == 1
    assert feed.book_state("linear:BTCUSDT") is BookState.INVALID


# -- malformed input and connection loss -------------------------------------------------


def test_malformed_frames_are_counted_and_never_raise() -> None:
    frames = [
        (LINEAR, b"{"),
        (LINEAR, b"[]"),
        (LINEAR, b'{"topic":"nonsense.BTCUSDT","type":"snapshot","data":{}}'),
        (LINEAR, b'{"topic":"orderbook.x.BTCUSDT","type":"snapshot","data":{"u":1}}'),
        (LINEAR, book_message("sideways", 5, BIDS, ASKS)),
        (LINEAR, book_message("snapshot", 100, BIDS, ASKS)),
        (LINEAR, book_message("delta", 101, [("17439.00", "not a size")], [])),
        (LINEAR, book_message("delta", 102, [("17439.00", "1.000")], [])),  # ignored: invalid
    ]
    feed, recorder = run(frames)
    assert feed.stats.malformed_frames == 6
    assert feed.book_state("linear:BTCUSDT") is BookState.INVALID
    assert recorder.of(BookStatus)[-1].reason == "malformed delta"


def test_operation_answers_are_not_malformed() -> None:
    feed, _ = run(
        [
            (SPOT, b'{"success":true,"ret_msg":"","conn_id":"c1","req_id":"","op":"subscribe"}'),
            (SPOT, b'{"success":true,"ret_msg":"pong","conn_id":"c1","op":"ping"}'),
            (
                SPOT,
                b'{"success":false,"ret_msg":"error:handler not found",'
                b'"conn_id":"c1","op":"subscribe"}',
            ),
        ]
    )
    assert feed.stats.malformed_frames == 0
    assert feed.venue_errors == 1


def test_a_lost_connection_invalidates_only_its_books() -> None:
    feed, _ = run(
        [
            (SPOT, book_message("snapshot", 10, BIDS, ASKS)),
            (LINEAR, book_message("snapshot", 900, BIDS, ASKS)),
        ]
    )
    feed.connection_lost("timeout", 1, LINEAR)
    assert feed.book_state("linear:BTCUSDT") is BookState.INVALID
    assert feed.book_state("spot:BTCUSDT") is BookState.VALID


# -- trades ------------------------------------------------------------------------------


def test_public_trades_take_the_taker_side_and_the_book_precision() -> None:
    trade = orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": 1672304486868,
            "data": [
                {
                    "T": 1672304486865,
                    "s": "BTCUSDT",
                    "S": "Buy",
                    "v": "0.001",
                    "p": "16578.50",
                    "L": "PlusTick",
                    "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
                    "BT": False,
                }
            ],
        }
    )
    feed, recorder = run(
        [(LINEAR, trade), (LINEAR, book_message("snapshot", 1, BIDS, ASKS)), (LINEAR, trade)]
    )
    (published,) = recorder.of(Trade)  # the first came before any precision was known
    assert published.symbol == "linear:BTCUSDT"
    assert published.aggressor is AggressorSide.BUY
    assert (published.price, published.size) == (fixed("16578.50", 2), fixed("0.001", 3))
    assert published.ts_event == 1672304486865 * 1_000_000
    assert feed.stats.trades == 1


# -- replay ------------------------------------------------------------------------------


def _replay(*paths: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel",
            "replay",
            *paths,
            "--venue",
            "bybit",
            "--verify",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_replay_of_a_cryptofeed_jsonl_capture_keeps_spot_and_linear_apart() -> None:
    # Written by hand in cryptofeed 3.0's capture format: a spot and a linear
    # connection, both subscribed to orderbook.50.BTCUSDT.
    status, report = _replay(str(FIXTURES / "bybit_spot_linear.jsonl"))
    assert status == 0
    assert report["gaps"] == 0 and report["malformed_frames"] == 0
    assert set(report["books"]) == {"spot:BTCUSDT", "linear:BTCUSDT"}
    assert report["books"]["spot:BTCUSDT"]["best_bid"] == ["17000.20", "0.500000"]
    assert report["books"]["linear:BTCUSDT"]["best_bid"] == ["17440.00", "40.833"]


def test_replay_of_a_recording_with_a_gap_exits_1(tmp_path: Path) -> None:
    recording = tmp_path / "bybit.tkr"
    with RecordingWriter(recording) as writer:
        writer.write(RawFrame(1, book_message("snapshot", 100, BIDS, ASKS), LINEAR))
        writer.write(RawFrame(2, book_message("delta", 103, [], []), LINEAR))
    status, report = _replay(str(recording))
    assert status == 1
    assert report["gaps"] == 1
    assert report["books"]["linear:BTCUSDT"]["state"] == "invalid"


@pytest.mark.parametrize("payload", [b"", b"null", b'{"topic":5}'])
def test_odd_payloads_are_malformed(payload: bytes) -> None:
    feed = BybitFeed(Bus())
    feed.on_frame(RawFrame(1, payload, SPOT))
    assert feed.stats.malformed_frames == 1
