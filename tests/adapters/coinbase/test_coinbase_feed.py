"""The Coinbase Advanced Trade feed: level2 books checked by ``sequence_num`` per connection.

Messages follow the shapes on the "Advanced Trade WebSocket Channels" page
(https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-channels);
the venue publishes no checksum, so the sequences are built here.
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
from kernel.adapters.coinbase import CoinbaseFeed
from kernel.adapters.wire import rfc3339_to_ns
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

WS = "wss://advanced-trade-ws.coinbase.com"
OTHER = "wss://advanced-trade-ws.coinbase.com/?second"
FIXTURES = Path(__file__).parent / "fixtures"
STAMP = "2023-02-09T20:32:50.714964855Z"
STAMP_NS = 1_675_974_770_714_964_855


def envelope(channel: str, sequence: int, events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": STAMP,
            "sequence_num": sequence,
            "events": events,
        }
    )


def level2(
    sequence: int, kind: str, levels: list[tuple[str, str, str]], product: str = "BTC-USD"
) -> bytes:
    updates = [
        {"side": side, "event_time": STAMP, "price_level": price, "new_quantity": qty}
        for side, price, qty in levels
    ]
    return envelope(
        "l2_data", sequence, [{"type": kind, "product_id": product, "updates": updates}]
    )


def heartbeat(sequence: int, counter: int | str) -> bytes:
    return envelope(
        "heartbeats",
        sequence,
        [{"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC", "heartbeat_counter": counter}],
    )


# The level2 example's first levels, plus an offer side.
SNAPSHOT = [
    ("bid", "21921.73", "0.06317902"),
    ("bid", "21921.3", "0.02"),
    ("offer", "21921.74", "0.1"),
    ("offer", "21922.5", "1.5"),
]


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

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def run(frames: list[tuple[str, bytes]], **options: Any) -> tuple[CoinbaseFeed, Recorder]:
    bus = Bus()
    recorder = Recorder(bus)
    feed = CoinbaseFeed(bus, **options)
    for index, (source, payload) in enumerate(frames):
        feed.on_frame(RawFrame(1_675_974_770_000_000_000 + index, payload, source))
    return feed, recorder


def fixed(text: str, precision: int) -> int:
    return int(Decimal(text).scaleb(precision))


# -- level2 ------------------------------------------------------------------------------


def test_snapshot_then_updates_build_the_book() -> None:
    feed, recorder = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (WS, level2(1, "update", [("bid", "21921.73", "0"), ("offer", "21923", "2.25")])),
        ]
    )
    assert feed.book_state("BTC-USD") is BookState.VALID
    (snapshot,) = recorder.of(BookSnapshot)
    assert snapshot.sequence == 0 and snapshot.ts_event == STAMP_NS
    (delta,) = recorder.of(BookDelta)
    assert delta.sequence == 1
    assert delta.bids == ((fixed("21921.73", 2), 0),)
    book = feed.book("BTC-USD")
    assert book is not None
    assert book.best_bid() == (fixed("21921.3", 2), fixed("0.02", 8))
    assert book.asks[fixed("21923", 2)] == fixed("2.25", 8)
    assert recorder.rebuilt["BTC-USD"].bids == book.bids
    # Sizes keep 8 decimals although the snapshot wrote some with fewer.
    instrument = feed.instrument("BTC-USD")
    assert instrument is not None and instrument.size_precision == 8


def test_a_sequence_gap_on_any_channel_invalidates_every_book_of_the_connection() -> None:
    requests: list[Any] = []
    feed, recorder = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (
                WS,
                level2(
                    1, "snapshot", [("bid", "1500.1", "1"), ("offer", "1500.2", "1")], "ETH-USD"
                ),
            ),
            (WS, heartbeat(2, 1)),
            (WS, heartbeat(4, 2)),  # message 3 was lost: whose it was, nobody knows
            (WS, level2(5, "update", [("bid", "21921.3", "0.5")])),  # ignored: invalid
            (WS, level2(6, "snapshot", SNAPSHOT)),  # the resubscription's snapshot
        ],
        on_resync=requests.append,
    )
    assert feed.stats.gaps == 1
    assert feed.book_state("ETH-USD") is BookState.INVALID
    assert feed.book_state("BTC-USD") is BookState.VALID
    invalid = [s for s in recorder.of(BookStatus) if s.state is BookState.INVALID]
    assert {s.symbol for s in invalid} == {"BTC-USD", "ETH-USD"}
    assert all(s.reason == "gap: sequence_num 4 after 2" for s in invalid)
    assert sorted((r.connection, r.subject) for r in requests) == [
        (WS, "level2:BTC-USD"),
        (WS, "level2:ETH-USD"),
    ]
    assert recorder.of(BookDelta) == []
    assert feed.stats.resyncs == 1


def test_sequences_are_counted_per_connection() -> None:
    feed, _ = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (OTHER, level2(0, "snapshot", [("bid", "1500.1", "1")], "ETH-USD")),
            (OTHER, heartbeat(7, 1)),  # a gap on the other connection only
            (WS, level2(1, "update", [("bid", "21921.3", "0.5")])),
        ]
    )
    assert feed.stats.gaps == 1
    assert feed.book_state("ETH-USD") is BookState.INVALID
    assert feed.book_state("BTC-USD") is BookState.VALID


def test_a_late_or_repeated_message_is_dropped() -> None:
    feed, recorder = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (WS, level2(1, "update", [("bid", "21921.3", "0.5")])),
            (WS, level2(1, "update", [("bid", "21921.3", "0.7")])),  # repeated number
            (WS, level2(2, "update", [("bid", "21921.2", "0.1")])),
        ]
    )
    assert feed.late_messages == 1
    assert feed.stats.gaps == 0
    assert [d.sequence for d in recorder.of(BookDelta)] == [1, 2]
    assert feed.book("BTC-USD").bids[fixed("21921.3", 2)] == fixed("0.5", 8)  # type: ignore[union-attr]


def test_numbering_from_0_again_is_a_new_connection() -> None:
    feed, recorder = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (WS, level2(1, "update", [("bid", "21921.3", "0.5")])),
            (WS, heartbeat(0, 1)),  # reconnected to the same address
            (WS, level2(1, "snapshot", SNAPSHOT)),
        ]
    )
    assert feed.stats.gaps == 0 and feed.late_messages == 0
    states = [s.state for s in recorder.of(BookStatus)]
    assert states == [BookState.VALID, BookState.INVALID, BookState.VALID]
    assert feed.book_state("BTC-USD") is BookState.VALID


def test_updates_before_a_snapshot_are_skipped_and_a_crossed_book_is_invalid() -> None:
    feed, _ = run(
        [
            (WS, level2(0, "update", [("bid", "21921.3", "0.5")])),
            (WS, level2(1, "snapshot", SNAPSHOT)),
            (WS, level2(2, "update", [("bid", "21930", "0.5")])),
        ]
    )
    assert feed.stats.malformed_frames == 0
    assert feed.stats.crossed_books == 1
    assert feed.book_state("BTC-USD") is BookState.INVALID


# -- trades, ticker, heartbeats ----------------------------------------------------------


def test_market_trades_updates_are_published_and_the_replayed_snapshot_is_not() -> None:
    def trades(sequence: int, kind: str, side: str, trade_id: str) -> bytes:
        trade = {
            "trade_id": trade_id,
            "product_id": "BTC-USD",
            "price": "21921.74",
            "size": "0.00100000",
            "side": side,
            "time": "2019-08-14T20:42:27.265Z",
        }
        return envelope("market_trades", sequence, [{"type": kind, "trades": [trade]}])

    feed, recorder = run(
        [
            (WS, level2(0, "snapshot", SNAPSHOT)),
            (WS, trades(1, "snapshot", "SELL", "1")),
            (WS, trades(2, "update", "BUY", "2")),
        ]
    )
    (trade,) = recorder.of(Trade)
    assert trade.trade_id == "2"
    assert trade.aggressor is AggressorSide.BUY
    assert (trade.price, trade.size) == (fixed("21921.74", 2), fixed("0.001", 8))
    assert trade.ts_event == 1_565_815_347_265_000_000
    assert feed.stats.trades == 1


def test_ticker_is_the_top_of_book() -> None:
    ticker = envelope(
        "ticker",
        1,
        [
            {
                "type": "snapshot",
                "tickers": [
                    {
                        "type": "ticker",
                        "product_id": "BTC-USD",
                        "price": "21932.98",
                        "volume_24_h": "16038.28770938",
                        "best_bid": "21921.73",
                        "best_bid_quantity": "0.06317902",
                        "best_ask": "21921.74",
                        "best_ask_quantity": "0.1",
                    }
                ],
            }
        ],
    )
    _, recorder = run([(WS, level2(0, "snapshot", SNAPSHOT)), (WS, ticker)])
    (quote,) = recorder.of(Quote)
    assert quote.sequence == 1
    assert (quote.bid_price, quote.bid_size) == (fixed("21921.73", 2), fixed("0.06317902", 8))
    assert (quote.ask_price, quote.ask_size) == (fixed("21921.74", 2), fixed("0.1", 8))


def test_heartbeats_subscriptions_and_unknown_channels_are_not_malformed() -> None:
    subscriptions = envelope("subscriptions", 2, [{"subscriptions": {"level2": ["BTC-USD"]}}])
    feed, _ = run(
        [
            (WS, heartbeat(0, "3049")),  # documented as a string
            (WS, heartbeat(1, 3050)),  # sent as an integer
            (WS, subscriptions),
            (WS, envelope("a_channel_added_later", 3, [{}])),
            (WS, b'{"type":"error","message":"failure to subscribe"}'),
        ]
    )
    assert feed.stats.malformed_frames == 0
    assert feed.heartbeats == {WS: 3050}
    assert feed.venue_errors == 1
    assert feed.stats.gaps == 0


def test_malformed_frames_are_counted_and_never_raise() -> None:
    feed, recorder = run(
        [
            (WS, b"nope"),
            (WS, b'{"channel":"l2_data","events":[]}'),  # no sequence_num
            (WS, envelope("l2_data", 0, [{"type": "snapshot", "product_id": 7, "updates": []}])),
            (WS, level2(1, "snapshot", SNAPSHOT)),
            (WS, level2(2, "update", [("middle", "21921.3", "1")])),
        ]
    )
    assert feed.stats.malformed_frames == 4
    assert feed.book_state("BTC-USD") is BookState.INVALID
    assert recorder.of(BookStatus)[-1].reason == "malformed update"


def test_a_lost_connection_invalidates_its_books_and_forgets_its_numbering() -> None:
    feed, _ = run([(WS, level2(5, "snapshot", SNAPSHOT))])
    feed.connection_lost("closed", 1, WS)
    assert feed.book_state("BTC-USD") is BookState.INVALID
    feed.on_frame(RawFrame(2, level2(0, "snapshot", SNAPSHOT), WS))
    assert feed.book_state("BTC-USD") is BookState.VALID
    assert feed.late_messages == 0


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
            "coinbase",
            "--verify",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_replay_of_a_cryptofeed_text_capture_verifies() -> None:
    status, report = _replay(str(FIXTURES / "coinbase_cryptofeed.txt"))
    assert status == 0
    assert report["gaps"] == 0 and report["malformed_frames"] == 0
    assert report["book_updates"] == 3
    assert report["books"]["BTC-USD"]["state"] == "valid"
    assert report["books"]["BTC-USD"]["best_bid"] == ["21921.30", "0.50000000"]


def test_replay_of_a_recording_with_a_gap_exits_1(tmp_path: Path) -> None:
    recording = tmp_path / "coinbase.tkr"
    with RecordingWriter(recording) as writer:
        writer.write(RawFrame(1, level2(0, "snapshot", SNAPSHOT), WS))
        writer.write(RawFrame(2, heartbeat(3, 1), WS))
    status, report = _replay(str(recording))
    assert status == 1
    assert report["gaps"] == 1
    assert report["books"]["BTC-USD"]["state"] == "invalid"


@pytest.mark.parametrize(
    "payload", [b"", b"[]", b'{"channel":"l2_data","sequence_num":-1,"events":[]}']
)
def test_odd_payloads_are_malformed(payload: bytes) -> None:
    feed = CoinbaseFeed(Bus())
    feed.on_frame(RawFrame(1, payload, WS))
    assert feed.stats.malformed_frames == 1


def test_venue_timestamps_convert_to_nanoseconds_exactly() -> None:
    assert rfc3339_to_ns("2023-02-09T20:32:50.714964855Z") == STAMP_NS
    assert rfc3339_to_ns("2023-02-09T20:32:50Z") == STAMP_NS - 714_964_855
    assert rfc3339_to_ns("2023-02-09T20:32:50.7+00:00") == STAMP_NS - 14_964_855
    with pytest.raises(ValueError, match="not UTC"):
        rfc3339_to_ns("2023-02-09T20:32:50.7+01:00")
