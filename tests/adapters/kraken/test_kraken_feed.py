"""The Kraken feed: books verified by their checksum, cut to depth, resynced on failure.

Frames from Kraken's own guides are the oracle where the guides give them; the
other sequences are built here, with checksums from the reference book in
``kraken_frames`` (a plain Decimal-keyed model that shares no code with the feed).
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kraken_frames import (
    DOC_V1_ASKS,
    DOC_V1_BIDS,
    DOC_V1_UPDATE,
    DOC_V1_VOLUME,
    DOC_V2_ASKS,
    DOC_V2_BIDS,
    DOC_V2_CHECKSUM,
    V1_URL,
    V2_URL,
    ReferenceBook,
    frames,
    v1_snapshot,
    v1_update,
    v2_book,
    v2_subscribed,
)

from kernel.adapters.base import RawFrame
from kernel.adapters.kraken import KrakenFeed
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

FIXTURES = Path(__file__).parent / "fixtures"


class Recorder:
    """Every market event the feed publishes, and the book a subscriber rebuilds from them."""

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
        return [event for event in self.events if isinstance(event, kind)]


def run(payloads: list[bytes], source: str = V1_URL, **options: Any) -> tuple[KrakenFeed, Recorder]:
    bus = Bus()
    recorder = Recorder(bus)
    feed = KrakenFeed(bus, **options)
    for frame in frames(payloads, source):
        feed.on_frame(frame)
    return feed, recorder


def doc_v1_book(depth: int) -> bytes:
    asks = [(p, DOC_V1_VOLUME) for p in DOC_V1_ASKS]
    bids = [(p, DOC_V1_VOLUME) for p in DOC_V1_BIDS]
    return v1_snapshot("BTC/USD", asks, bids, depth)


def fixed(text: str, precision: int) -> int:
    return int(Decimal(text).scaleb(precision))


def levels_of(book: L2Book) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return book.bid_levels(), book.ask_levels()


# -- the documentation's examples ----------------------------------------------------


def test_v1_documentation_update_verifies_against_the_documentation_book() -> None:
    # The guide's update carries the checksum of its example book; its four levels
    # lie beyond the best ten, so on a book-1000 subscription they are kept.
    feed, _ = run([doc_v1_book(1000), DOC_V1_UPDATE])
    assert feed.stats.checksum_checks == 1
    assert feed.stats.checksum_failures == 0
    assert feed.book_state("BTC/USD") is BookState.VALID
    book = feed.book("BTC/USD")
    assert book is not None
    assert len(book.asks) == 12 and len(book.bids) == 12
    assert book.best_bid() == (fixed("0.05000", 5), fixed("0.00000500", 8))


def test_v1_snapshot_carries_no_checksum_and_is_not_checked() -> None:
    feed, recorder = run([doc_v1_book(10)])
    assert feed.stats.checksum_checks == 0
    assert feed.book_state("BTC/USD") is BookState.VALID
    assert [s.state for s in recorder.of(BookStatus)] == [BookState.VALID]
    assert len(recorder.of(BookSnapshot)) == 1


def test_v2_documentation_snapshot_verifies_from_its_number_literals() -> None:
    # v2 sends prices and quantities as JSON numbers; "0.10000000" must keep its zeros.
    snapshot = v2_book("snapshot", "BTC/USD", DOC_V2_ASKS, DOC_V2_BIDS, DOC_V2_CHECKSUM)
    assert b'"qty":0.10000000' in snapshot
    feed, recorder = run([snapshot], V2_URL)
    assert feed.stats.checksum_checks == 1
    assert feed.stats.checksum_failures == 0
    assert feed.book_state("BTC/USD") is BookState.VALID
    instrument = feed.instrument("BTC/USD")
    assert instrument is not None
    assert (instrument.price_precision, instrument.size_precision) == (1, 8)
    snapshot_event = recorder.of(BookSnapshot)[0]
    assert snapshot_event.bids[0] == (fixed("45283.5", 1), fixed("0.10000000", 8))
    assert snapshot_event.asks[0] == (fixed("45285.2", 1), fixed("0.00100000", 8))


def test_v2_snapshot_with_a_wrong_checksum_is_never_published() -> None:
    snapshot = v2_book("snapshot", "BTC/USD", DOC_V2_ASKS, DOC_V2_BIDS, DOC_V2_CHECKSUM + 1)
    feed, recorder = run([snapshot], V2_URL)
    assert feed.stats.checksum_failures == 1
    assert feed.book_state("BTC/USD") is BookState.INVALID
    assert recorder.of(BookSnapshot) == []
    assert [request.subject for request in feed.resync_requests.take()] == ["book:BTC/USD"]


# -- checksum mismatch, resync ---------------------------------------------------------


def test_checksum_mismatch_invalidates_asks_for_a_resync_and_the_next_snapshot_recovers() -> None:
    reference = ReferenceBook(depth=10)
    asks = [(p, DOC_V1_VOLUME) for p in DOC_V1_ASKS]
    bids = [(p, DOC_V1_VOLUME) for p in DOC_V1_BIDS]
    for price, qty in asks:
        reference.set("ask", price, qty)
    for price, qty in bids:
        reference.set("bid", price, qty)
    reference.set("ask", "0.05005", "0.00000700")
    good_checksum = reference.checksum()
    payloads = [
        v1_snapshot("XBT/USD", asks, bids),
        v1_update("XBT/USD", [("0.05005", "0.00000700")], [], good_checksum + 1),
        v1_update("XBT/USD", [("0.05010", "0.00000800")], [], None),  # ignored: invalid
        v1_snapshot("XBT/USD", asks, bids),
    ]
    requests: list[Any] = []
    feed, recorder = run(payloads, on_resync=requests.append)
    assert feed.stats.checksum_failures == 1
    statuses = recorder.of(BookStatus)
    assert [s.state for s in statuses] == [BookState.VALID, BookState.INVALID, BookState.VALID]
    assert "checksum mismatch" in statuses[1].reason
    assert [(r.venue, r.connection, r.subject) for r in requests] == [
        ("kraken", V1_URL, "book:XBT/USD")
    ]
    assert recorder.of(BookDelta) == []  # nothing from the failed or ignored updates
    assert feed.stats.resyncs == 1
    assert feed.book_state("XBT/USD") is BookState.VALID


def test_a_matching_checksum_publishes_the_update() -> None:
    reference = ReferenceBook(depth=10)
    asks = [(p, DOC_V1_VOLUME) for p in DOC_V1_ASKS]
    bids = [(p, DOC_V1_VOLUME) for p in DOC_V1_BIDS]
    for price, qty in asks:
        reference.set("ask", price, qty)
    for price, qty in bids:
        reference.set("bid", price, qty)
    reference.set("ask", "0.05005", "0.00000700")
    feed, recorder = run(
        [
            v1_snapshot("XBT/USD", asks, bids),
            v1_update("XBT/USD", [("0.05005", "0.00000700")], [], reference.checksum()),
        ]
    )
    assert feed.stats.checksum_checks == 1 and feed.stats.checksum_failures == 0
    (delta,) = recorder.of(BookDelta)
    assert delta.asks == ((fixed("0.05005", 5), fixed("0.00000700", 8)),)
    assert recorder.rebuilt["XBT/USD"].asks == feed.book("XBT/USD").asks  # type: ignore[union-attr]


# -- depth -----------------------------------------------------------------------------


def test_levels_pushed_out_of_the_subscribed_depth_are_removed() -> None:
    # A better bid on a full 10-level book pushes the worst one out, and Kraken sends
    # no delete for it. Later the venue drops that level unseen (it is out of scope);
    # when the new bid goes, Kraken republishes the next level that really exists. A
    # book that kept the pushed-out level would rank it in its best ten and fail.
    cut = ReferenceBook(depth=10)
    kept = ReferenceBook(depth=1000)
    for reference in (cut, kept):
        for price, qty in DOC_V2_ASKS:
            reference.set("ask", price, qty)
        for price, qty in DOC_V2_BIDS:
            reference.set("bid", price, qty)
        reference.set("bid", "45284.0", "0.50000000")
    cut.truncate()
    first = cut.checksum()
    for reference in (cut, kept):
        reference.set("bid", "45284.0", "0")
        reference.set("bid", "45270.0", "0.20000000")
    cut.truncate()
    second = cut.checksum()
    assert kept.checksum() != second  # keeping the pushed-out level would fail here
    pushed_out = fixed("45276.6", 1)
    feed, recorder = run(
        [
            v2_subscribed("BTC/USD", 10),
            v2_book("snapshot", "BTC/USD", DOC_V2_ASKS, DOC_V2_BIDS, DOC_V2_CHECKSUM),
            v2_book("update", "BTC/USD", [], [("45284.0", "0.50000000")], first),
            v2_book("update", "BTC/USD", [], [("45284.0", "0"), ("45270.0", "0.20000000")], second),
        ],
        V2_URL,
    )
    assert feed.stats.checksum_checks == 3
    assert feed.stats.checksum_failures == 0
    book = feed.book("BTC/USD")
    assert book is not None and len(book.bids) == 10
    assert pushed_out not in book.bids
    first_delta = recorder.of(BookDelta)[0]
    assert (pushed_out, 0) in first_delta.bids  # subscribers are told the level went away
    assert recorder.rebuilt["BTC/USD"].bids == book.bids


def test_v1_channel_name_sets_the_depth() -> None:
    # On book-10 the documentation update's levels fall outside the depth at once.
    update = DOC_V1_UPDATE.replace(b"book-1000", b"book-10")
    feed, recorder = run([doc_v1_book(10), update])
    assert feed.stats.checksum_failures == 0
    book = feed.book("BTC/USD")
    assert book is not None and len(book.asks) == 10 and len(book.bids) == 10
    assert feed.book_depth("BTC/USD") == 10
    assert recorder.rebuilt["BTC/USD"].asks == book.asks


def test_v2_depth_without_acknowledgement_follows_the_snapshot() -> None:
    asks = [(f"{200 + i}.0", "1.00000000") for i in range(25)]
    bids = [(f"{199 - i}.0", "1.00000000") for i in range(25)]
    reference = ReferenceBook(depth=25)
    for price, qty in asks:
        reference.set("ask", price, qty)
    for price, qty in bids:
        reference.set("bid", price, qty)
    feed, _ = run([v2_book("snapshot", "ETH/USD", asks, bids, reference.checksum())], V2_URL)
    assert feed.book_depth("ETH/USD") == 25
    assert feed.book_state("ETH/USD") is BookState.VALID


def test_republished_level_fills_the_depth_again() -> None:
    # A level inside the depth is deleted; Kraken republishes the next one ("r").
    asks = [(f"{200 + i}.0", "1.00000000") for i in range(10)]
    bids = [(f"{199 - i}.0", "1.00000000") for i in range(10)]
    reference = ReferenceBook(depth=10)
    for price, qty in asks:
        reference.set("ask", price, qty)
    for price, qty in bids:
        reference.set("bid", price, qty)
    reference.set("ask", "201.0", "0.00000000")
    deleted = reference.checksum()
    reference.set("ask", "210.0", "2.00000000")
    republished = reference.checksum()
    feed, _ = run(
        [
            v1_snapshot("ETH/USD", asks, bids),
            v1_update("ETH/USD", [("201.0", "0.00000000")], [], deleted),
            v1_update("ETH/USD", [("210.0", "2.00000000")], [], republished, republish=True),
        ]
    )
    assert feed.stats.checksum_checks == 2 and feed.stats.checksum_failures == 0
    book = feed.book("ETH/USD")
    assert book is not None and len(book.asks) == 10
    assert book.asks[fixed("210.0", 1)] == fixed("2.00000000", 8)


def test_updates_to_one_price_in_a_message_apply_in_order() -> None:
    reference = ReferenceBook(depth=10)
    asks = [("200.0", "1.00000000")]
    bids = [("199.0", "1.00000000")]
    reference.set("ask", "200.0", "1.00000000")
    reference.set("bid", "199.0", "1.00000000")
    reference.set("ask", "200.0", "3.00000000")
    update = v1_update(
        "ETH/USD", [("200.0", "2.00000000"), ("200.0", "3.00000000")], [], reference.checksum()
    )
    feed, _ = run([v1_snapshot("ETH/USD", asks, bids), update])
    assert feed.stats.checksum_failures == 0
    assert feed.book("ETH/USD").asks == {fixed("200.0", 1): fixed("3.00000000", 8)}  # type: ignore[union-attr]


# -- malformed input, crossing, connection loss ----------------------------------------


def test_malformed_frames_are_counted_and_never_raise() -> None:
    good = v1_snapshot("ETH/USD", [("200.0", "1.00000000")], [("199.0", "1.00000000")])
    payloads = [
        b"not json",
        b"[1, 2]",
        b'{"channel":"book","type":"sideways","data":[]}',
        b'{"channel":"nonsense","data":[]}',
        b"42",
        good,
        v1_update("ETH/USD", [("abc", "1.0")], [], None),  # invalidates the valid book
        v1_update("ETH/USD", [("200.0", "1.000000001")], [], None),  # too precise; ignored
    ]
    feed, recorder = run(payloads)
    assert feed.stats.malformed_frames == 6
    assert feed.stats.frames == 8
    assert feed.book_state("ETH/USD") is BookState.INVALID
    assert "malformed" in recorder.of(BookStatus)[-1].reason
    assert len(feed.resync_requests) == 1


def test_a_crossed_book_is_invalid() -> None:
    feed, _ = run(
        [
            v1_snapshot("ETH/USD", [("200.0", "1.00000000")], [("199.0", "1.00000000")]),
            v1_update("ETH/USD", [], [("201.0", "1.00000000")], None),
        ]
    )
    assert feed.stats.crossed_books == 1
    assert feed.book_state("ETH/USD") is BookState.INVALID


def test_a_lost_connection_invalidates_its_books() -> None:
    feed, recorder = run([doc_v1_book(10)])
    feed.connection_lost("closed by peer", 5)
    assert feed.book_state("BTC/USD") is BookState.INVALID
    assert recorder.of(BookStatus)[-1].reason == "connection lost: closed by peer"
    assert [r.connection for r in feed.resync_requests.take()] == [V1_URL]


# -- trades and top of book ------------------------------------------------------------


def test_trades_and_quotes_of_both_versions() -> None:
    v1_trade = orjson.dumps(
        [0, [["0.05005", "0.00000500", "1534614057.321597", "s", "l", ""]], "trade", "BTC/USD"]
    )
    v1_spread = orjson.dumps(
        [
            0,
            ["0.05000", "0.05005", "1534614248.765567", "0.00000500", "0.00000500"],
            "spread",
            "BTC/USD",
        ]
    )
    _, recorder = run([doc_v1_book(10), v1_trade, v1_spread])
    (trade,) = recorder.of(Trade)
    assert trade.aggressor is AggressorSide.SELL
    assert (trade.price, trade.size) == (fixed("0.05005", 5), fixed("0.00000500", 8))
    assert trade.ts_event == 1_534_614_057_321_597_000
    (quote,) = recorder.of(Quote)
    assert (quote.bid_price, quote.ask_price) == (fixed("0.05000", 5), fixed("0.05005", 5))

    v2_trade = (
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
        b'"price":45285.2,"qty":0.00100000,"ord_type":"market","trade_id":4665906,'
        b'"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
    )
    v2_ticker = (
        b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,'
        b'"bid_qty":0.10000000,"ask":45285.2,"ask_qty":0.00100000,"last":45285.2}]}'
    )
    snapshot = v2_book("snapshot", "BTC/USD", DOC_V2_ASKS, DOC_V2_BIDS, DOC_V2_CHECKSUM)
    _, recorder = run([snapshot, v2_trade, v2_ticker], V2_URL)
    (trade,) = recorder.of(Trade)
    assert trade.aggressor is AggressorSide.BUY and trade.trade_id == "4665906"
    assert trade.ts_event == 1_695_628_177_708_706_000
    (quote,) = recorder.of(Quote)
    assert (quote.bid_size, quote.ask_size) == (fixed("0.1", 8), fixed("0.001", 8))


def test_heartbeats_and_acknowledgements_are_not_malformed() -> None:
    feed, _ = run(
        [
            b'{"event":"heartbeat"}',
            b'{"event":"systemStatus","status":"online","version":"1.9.0"}',
            b'{"channel":"heartbeat"}',
            b'{"method":"pong","req_id":1}',
            b'{"method":"subscribe","success":false,"error":"Currency pair not supported"}',
        ]
    )
    assert feed.stats.malformed_frames == 0
    assert feed.heartbeats == 2
    assert feed.venue_errors == 1


# -- property: the book's checksum is the reference's ----------------------------------

_BID_PRICES = [f"{100 + i / 10:.1f}" for i in range(60)]
_ASK_PRICES = [f"{110 + i / 10:.1f}" for i in range(60)]
_QTY = st.sampled_from(["0.00000000", "0.10000000", "1.00000000", "2.50000000", "0.00012345"])
_CHANGE = st.tuples(st.sampled_from(["bid", "ask"]), st.integers(0, 59), _QTY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.sampled_from([10, 25]),
    messages=st.lists(st.lists(_CHANGE, min_size=1, max_size=8), min_size=1, max_size=30),
    v2=st.booleans(),
)
def test_random_updates_keep_the_checksum_equal_to_the_reference(
    depth: int, messages: list[list[tuple[str, int, str]]], v2: bool
) -> None:
    reference = ReferenceBook(depth)
    start_bids = [(_BID_PRICES[-1 - i], "1.00000000") for i in range(0, 30, 2)]
    start_asks = [(_ASK_PRICES[i], "1.00000000") for i in range(0, 30, 2)]
    for price, qty in start_bids:
        reference.set("bid", price, qty)
    for price, qty in start_asks:
        reference.set("ask", price, qty)
    reference.truncate()
    snap_bids = reference.best("bid")
    snap_asks = reference.best("ask")
    if v2:
        payloads = [
            v2_subscribed("ETH/USD", depth),
            v2_book("snapshot", "ETH/USD", snap_asks, snap_bids, reference.checksum()),
        ]
    else:
        payloads = [v1_snapshot("ETH/USD", snap_asks, snap_bids, depth)]
    for message in messages:
        asks: list[tuple[str, str]] = []
        bids: list[tuple[str, str]] = []
        for side, index, qty in message:
            price = (_BID_PRICES if side == "bid" else _ASK_PRICES)[index]
            (bids if side == "bid" else asks).append((price, qty))
            reference.set(side, price, qty)
        reference.truncate()
        if v2:
            payloads.append(v2_book("update", "ETH/USD", asks, bids, reference.checksum()))
        else:
            payloads.append(v1_update("ETH/USD", asks, bids, reference.checksum(), depth))
    feed, recorder = run(payloads, V2_URL if v2 else V1_URL)
    assert feed.stats.checksum_failures == 0
    assert feed.stats.checksum_checks == len(messages) + v2
    assert feed.book_state("ETH/USD") is BookState.VALID
    book = feed.book("ETH/USD")
    assert book is not None
    want_bids = [(fixed(p, 1), fixed(q, 8)) for p, q in reference.best("bid")]
    want_asks = [(fixed(p, 1), fixed(q, 8)) for p, q in reference.best("ask")]
    assert levels_of(book) == (want_bids, want_asks)
    assert levels_of(recorder.rebuilt["ETH/USD"]) == (want_bids, want_asks)


# -- replay ----------------------------------------------------------------------------


def _replay(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel",
            "replay",
            *args,
            "--venue",
            "kraken",
            "--verify",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_replay_verifies_a_cryptofeed_text_capture() -> None:
    # A capture written by hand in cryptofeed's text format: the v1 guide's book and
    # update, a heartbeat, a trade.
    status, report = _replay(str(FIXTURES / "kraken_v1_cryptofeed.txt"))
    assert status == 0
    assert report["checksum_checks"] == 2
    assert report["checksum_failures"] == 0
    assert report["malformed_frames"] == 0
    assert report["books"]["BTC/USD"]["state"] == "valid"


def test_replay_of_a_recording_exits_1_on_a_checksum_failure(tmp_path: Path) -> None:
    recording = tmp_path / "kraken.tkr"
    snapshot = v2_book("snapshot", "BTC/USD", DOC_V2_ASKS, DOC_V2_BIDS, DOC_V2_CHECKSUM)
    bad = v2_book("update", "BTC/USD", [], [("45283.5", "0.20000000")], DOC_V2_CHECKSUM)
    with RecordingWriter(recording) as writer:
        for frame in frames([snapshot, bad], V2_URL):
            writer.write(frame)
    status, report = _replay(str(recording))
    assert status == 1
    assert report["checksum_checks"] == 2
    assert report["checksum_failures"] == 1
    assert report["books"]["BTC/USD"]["state"] == "invalid"


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"[]", b"{}"])
def test_odd_payloads_are_malformed(payload: bytes) -> None:
    feed = KrakenFeed(Bus())
    feed.on_frame(RawFrame(1, payload, V1_URL))
    assert feed.stats.malformed_frames == 1
