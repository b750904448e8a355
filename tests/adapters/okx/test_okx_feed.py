"""The OKX v5 feed: verified books, trades and quotes from raw frames.

The real capture (2022, ``books`` channel, no ``seqId``) must verify on every
book message; synthetic frames cover what the capture does not: sequence gaps,
crossed books, shallow channels and malformed input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.adapters.base import RawFrame
from kernel.adapters.okx import OkxFeed, okx_checksum
from kernel.bus import topics
from kernel.bus.bus import Bus
from tradekernel_sdk.types import (
    AggressorSide,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Quote,
    Trade,
)

SYMBOLS = ("BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP")
BOOK_MESSAGES = 290  # 3 snapshots + 287 updates in the bundled capture


# -- helpers ------------------------------------------------------------------


class Recorder:
    """Every market event published on the bus, with the index of the frame that caused it."""

    def __init__(self, bus: Bus) -> None:
        self.frame = -1
        self.events: list[tuple[int, Any]] = []
        bus.subscribe("data.>", lambda event: self.events.append((self.frame, event)))

    def of(self, kind: type[Any], symbol: str | None = None) -> list[Any]:
        return [
            event
            for _, event in self.events
            if isinstance(event, kind) and (symbol is None or event.symbol == symbol)
        ]

    def at(self, frame: int) -> list[Any]:
        return [event for index, event in self.events if index == frame]

    def after(self, frame: int, symbol: str) -> list[Any]:
        return [e for index, e in self.events if index > frame and e.symbol == symbol]


def replay(
    frames: Sequence[RawFrame], catalog: dict[str, Instrument] | None
) -> tuple[OkxFeed, Recorder]:
    bus = Bus()
    recorder = Recorder(bus)
    feed = OkxFeed(bus, catalog)
    for index, frame in enumerate(frames):
        recorder.frame = index
        feed.on_frame(frame)
    return feed, recorder


def fixed(text: str, precision: int) -> int:
    """Convert through Decimal, independently of the code under test."""
    value = Decimal(text).scaleb(precision)
    assert value == value.to_integral_value()
    return int(value)


class ReferenceBook:
    """A book of the received strings, ordered by Decimal price."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, list[str]] = {}
        self.asks: dict[Decimal, list[str]] = {}

    def load(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids.clear()
        self.asks.clear()
        self.apply(bids, asks)

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for level in levels:
                if Decimal(level[1]) == 0:
                    side.pop(Decimal(level[0]), None)
                else:
                    side[Decimal(level[0])] = level[:2]

    def top(self, depth: int = 25) -> tuple[list[list[str]], list[list[str]]]:
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:depth]]
        asks = [self.asks[p] for p in sorted(self.asks)[:depth]]
        return bids, asks

    def checksum(self) -> int:
        return okx_checksum(*self.top())

    def fixed(self, instrument: Instrument) -> tuple[dict[int, int], dict[int, int]]:
        def convert(side: dict[Decimal, list[str]]) -> dict[int, int]:
            return {
                fixed(px, instrument.price_precision): fixed(sz, instrument.size_precision)
                for px, sz in side.values()
            }

        return convert(self.bids), convert(self.asks)


def reference_books(
    frames: Sequence[RawFrame], stop: int | None = None
) -> dict[str, ReferenceBook]:
    """Replay the capture's book messages (up to frame ``stop`` included) into reference books."""
    books: dict[str, ReferenceBook] = {}
    for index, frame in enumerate(frames):
        if stop is not None and index > stop:
            break
        message = orjson.loads(frame.payload)
        if message.get("arg", {}).get("channel") != "books" or "event" in message:
            continue
        book = books.setdefault(message["arg"]["instId"], ReferenceBook())
        for item in message["data"]:
            if message["action"] == "snapshot":
                book.load(item["bids"], item["asks"])
            else:
                book.apply(item["bids"], item["asks"])
    return books


def frame_of(message: dict[str, Any] | bytes, recv_ns: int = 1) -> RawFrame:
    payload = message if isinstance(message, bytes) else orjson.dumps(message)
    return RawFrame(recv_ns, payload, "test")


TEST_SYMBOL = "TST-USDT"
TEST_INSTRUMENT = Instrument("okx", TEST_SYMBOL, price_precision=1, size_precision=3)


class Driver:
    """Sends well-formed book frames for one synthetic instrument, checksums included."""

    def __init__(self, channel: str = "books") -> None:
        self.bus = Bus()
        self.recorder = Recorder(self.bus)
        self.feed = OkxFeed(self.bus, {TEST_SYMBOL: TEST_INSTRUMENT})
        self.reference = ReferenceBook()
        self.channel = channel

    def send(self, message: dict[str, Any] | bytes) -> None:
        self.recorder.frame += 1
        self.feed.on_frame(frame_of(message, recv_ns=self.recorder.frame))

    def book(
        self,
        action: str | None,
        bids: list[list[str]],
        asks: list[list[str]],
        checksum: int | None = None,
        **extra: Any,
    ) -> None:
        if action == "update":
            self.reference.apply(bids, asks)
        else:
            self.reference.load(bids, asks)
        item: dict[str, Any] = {"asks": asks, "bids": bids, "ts": "1652459225464", **extra}
        if self.channel not in ("books5", "bbo-tbt"):
            item["checksum"] = self.reference.checksum() if checksum is None else checksum
        self.send_item(action, item)

    def send_item(self, action: str | None, item: dict[str, Any]) -> None:
        """Send one book data item as it is, without the reference book."""
        message: dict[str, Any] = {"arg": {"channel": self.channel, "instId": TEST_SYMBOL}}
        if action is not None:
            message["action"] = action
        message["data"] = [item]
        self.send(message)

    @property
    def state(self) -> BookState:
        return self.feed.book_state(TEST_SYMBOL)


def level(px: str, sz: str) -> list[str]:
    return [px, sz, "0", "1"]


SNAPSHOT_BIDS = [level("100.5", "1.5"), level("100.4", "2"), level("99", "0.001")]
SNAPSHOT_ASKS = [level("100.6", "3"), level("101", "0.25")]


# -- the real capture ---------------------------------------------------------


def test_every_book_message_in_the_capture_passes_its_checksum(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    feed, recorder = replay(okx_frames, okx_catalog)
    stats = feed.stats
    assert stats.frames == len(okx_frames) == 410
    assert stats.checksum_checks == BOOK_MESSAGES
    assert stats.checksum_failures == 0
    assert stats.gaps == 0
    assert stats.crossed_books == 0
    assert stats.resyncs == 0
    assert stats.malformed_frames == 0
    assert stats.book_updates == 287
    assert stats.level_updates == sum(len(d.bids) + len(d.asks) for d in recorder.of(BookDelta))
    for symbol in SYMBOLS:
        assert feed.book_state(symbol) is BookState.VALID
        assert [s.state for s in recorder.of(BookStatus, symbol)] == [BookState.VALID]
        assert len(recorder.of(BookSnapshot, symbol)) == 1
    assert len(recorder.of(BookDelta)) == 287


def test_books_are_never_crossed(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    bus = Bus()
    feed = OkxFeed(bus, okx_catalog)
    checked = []

    def check(delta: BookDelta) -> None:
        book = feed.book(delta.symbol)
        assert book is not None
        bid, ask = book.best_bid_price(), book.best_ask_price()
        assert bid is not None and ask is not None and bid < ask
        checked.append(delta)

    bus.subscribe(topics.book("okx", "*"), check)
    for frame in okx_frames:
        feed.on_frame(frame)
    assert bus.handler_errors == 0
    assert len(checked) == 287


def test_fixed_point_books_equal_the_decimal_strings(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    feed, recorder = replay(okx_frames, okx_catalog)
    references = reference_books(okx_frames)
    for symbol in SYMBOLS:
        book = feed.book(symbol)
        assert book is not None
        bids, asks = references[symbol].fixed(okx_catalog[symbol])
        assert book.bids == bids
        assert book.asks == asks
        assert len(book.bids) > 50 and len(book.asks) > 50
        snapshot = recorder.of(BookSnapshot, symbol)[0]
        assert [p for p, _ in snapshot.bids] == sorted((p for p, _ in snapshot.bids), reverse=True)
        assert [p for p, _ in snapshot.asks] == sorted(p for p, _ in snapshot.asks)


def test_published_events_carry_the_exact_venue_values(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    feed, recorder = replay(okx_frames, okx_catalog)
    for index, frame in enumerate(okx_frames):
        message = orjson.loads(frame.payload)
        if "event" in message:
            continue
        channel = message["arg"]["channel"]
        symbol = message["arg"]["instId"]
        instrument = okx_catalog[symbol]
        pp, sp = instrument.price_precision, instrument.size_precision
        events = recorder.at(index)
        item = message["data"][0]
        if channel == "books" and message["action"] == "update":
            (delta,) = events
            assert isinstance(delta, BookDelta)
            assert delta.bids == tuple((fixed(b[0], pp), fixed(b[1], sp)) for b in item["bids"])
            assert delta.asks == tuple((fixed(a[0], pp), fixed(a[1], sp)) for a in item["asks"])
            assert delta.ts_event == int(item["ts"]) * 1_000_000
            assert delta.ts_recv == frame.recv_ns
        elif channel == "trades":
            assert events == [
                Trade(
                    "okx",
                    symbol,
                    fixed(t["px"], pp),
                    fixed(t["sz"], sp),
                    AggressorSide.BUY if t["side"] == "buy" else AggressorSide.SELL,
                    t["tradeId"],
                    int(t["ts"]) * 1_000_000,
                    frame.recv_ns,
                )
                for t in message["data"]
            ]
        elif channel == "tickers":
            (quote,) = events
            assert quote == Quote(
                "okx",
                symbol,
                fixed(item["bidPx"], pp),
                fixed(item["bidSz"], sp),
                fixed(item["askPx"], pp),
                fixed(item["askSz"], sp),
                0,
                int(item["ts"]) * 1_000_000,
                frame.recv_ns,
            )
    assert feed.stats.trades == len(recorder.of(Trade)) == 74
    assert feed.stats.quotes == len(recorder.of(Quote)) == 28


def _corrupt_one_update(
    frames: list[RawFrame], symbol: str, nth: int
) -> tuple[int, list[RawFrame]]:
    """Change one size string inside the best 25 levels of ``symbol``'s ``nth`` update.

    Returns the index of the changed frame and the frames with it replaced.
    """
    seen = 0
    for index, frame in enumerate(frames):
        message = orjson.loads(frame.payload)
        if message.get("action") != "update" or message["arg"]["instId"] != symbol:
            continue
        seen += 1
        if seen < nth:
            continue
        item = message["data"][0]
        top_bids, top_asks = reference_books(frames, stop=index)[symbol].top()
        top = {Decimal(px) for px, _ in top_bids + top_asks}
        for side in ("bids", "asks"):
            for lvl in item[side]:
                if Decimal(lvl[1]) != 0 and Decimal(lvl[0]) in top:
                    lvl[1] = format(Decimal(lvl[1]) + Decimal("0.00000001"), "f")
                    corrupted = list(frames)
                    corrupted[index] = frame._replace(payload=orjson.dumps(message))
                    return index, corrupted
    raise AssertionError("no update touches the best 25 levels")


def test_corrupted_update_fails_checksum_and_invalidates_book(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    target, frames = _corrupt_one_update(okx_frames, "BTC-USDT", nth=20)
    bus = Bus()
    recorder = Recorder(bus)
    feed = OkxFeed(bus, okx_catalog)
    failures_at = []
    for index, frame in enumerate(frames):
        recorder.frame = index
        before = feed.stats.checksum_failures
        feed.on_frame(frame)
        if feed.stats.checksum_failures != before:
            failures_at.append(index)

    assert failures_at == [target]
    # Updates of the invalid book are not even checked until its next snapshot.
    skipped = sum(1 for f in frames[target + 1 :] if b'"books","instId":"BTC-USDT"' in f.payload)
    assert skipped > 0
    assert feed.stats.checksum_checks == BOOK_MESSAGES - skipped
    (status,) = recorder.at(target)
    assert isinstance(status, BookStatus)
    assert status.state is BookState.INVALID and "checksum" in status.reason
    assert feed.book_state("BTC-USDT") is BookState.INVALID
    book = feed.book("BTC-USDT")
    assert book is not None and len(book) == 0
    # Nothing for the book until a snapshot; trades and quotes are not book-derived.
    after = recorder.after(target, "BTC-USDT")
    assert not [e for e in after if isinstance(e, BookDelta | BookSnapshot | BookStatus)]
    assert [e for e in after if isinstance(e, Trade)]
    # The other instruments are unaffected.
    _, clean = replay(okx_frames, okx_catalog)
    for symbol in ("BTC-USD-220527", "UNI-USD-SWAP"):
        assert feed.book_state(symbol) is BookState.VALID
        assert recorder.of(BookDelta, symbol) == clean.of(BookDelta, symbol)


def test_invalid_book_recovers_on_the_next_snapshot(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    target, frames = _corrupt_one_update(okx_frames, "BTC-USDT", nth=20)
    snapshot = next(
        f for f in okx_frames if b'"snapshot"' in f.payload and b'"BTC-USDT"' in f.payload
    )
    feed, recorder = replay([*frames, snapshot], okx_catalog)
    last = len(frames)
    assert feed.stats.resyncs == 1
    assert feed.book_state("BTC-USDT") is BookState.VALID
    status, resnapshot = recorder.at(last)
    assert isinstance(status, BookStatus) and status.state is BookState.VALID
    assert isinstance(resnapshot, BookSnapshot)
    first = recorder.of(BookSnapshot, "BTC-USDT")[0]
    assert (resnapshot.bids, resnapshot.asks) == (first.bids, first.asks)
    assert target < last


def test_unknown_instruments_take_precision_from_their_first_snapshot(
    okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kernel.adapters.okx.feed"):
        feed, recorder = replay(okx_frames, None)
    assert feed.stats.checksum_checks == BOOK_MESSAGES
    assert feed.stats.checksum_failures == feed.stats.malformed_frames == 0
    for symbol in SYMBOLS:
        derived = feed.instrument(symbol)
        known = okx_catalog[symbol]
        assert derived is not None
        assert (derived.price_precision, derived.size_precision) == (
            known.price_precision,
            known.size_precision,
        )
    assert "not in the instrument catalog" in caplog.text
    # Tickers and trades that arrive before an instrument's first snapshot are dropped.
    assert 0 < len(recorder.of(Quote)) < 28
    assert 0 < len(recorder.of(Trade)) < 74


def test_the_shared_capture_verifies_like_the_bundled_one(
    shared_okx_dir: Path,
    okx_reader: Callable[[Path], list[RawFrame]],
    okx_catalog: dict[str, Instrument],
) -> None:
    frames = okx_reader(shared_okx_dir / "OKX.ws.1.0.gz")
    feed, _ = replay(frames, okx_catalog)
    assert feed.stats.checksum_checks == BOOK_MESSAGES
    assert feed.stats.checksum_failures == feed.stats.gaps == feed.stats.crossed_books == 0
    assert feed.stats.malformed_frames == 0


# -- synthetic frames ---------------------------------------------------------


def test_snapshot_publishes_status_then_the_whole_book() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, seqId=10, prevSeqId=-1)
    status, snapshot = driver.recorder.at(0)
    assert status == BookStatus("okx", TEST_SYMBOL, BookState.VALID, "books snapshot", 10, 0)
    assert snapshot == BookSnapshot(
        "okx",
        TEST_SYMBOL,
        ((1005, 1500), (1004, 2000), (990, 1)),
        ((1006, 3000), (1010, 250)),
        10,
        1652459225464 * 1_000_000,
        0,
    )
    assert driver.state is BookState.VALID


def test_updates_before_the_first_snapshot_are_ignored() -> None:
    driver = Driver()
    driver.book("update", [level("100.5", "1")], [], seqId=11, prevSeqId=10)
    assert driver.state is BookState.SYNCING
    assert driver.recorder.events == []
    assert driver.feed.stats.book_updates == driver.feed.stats.malformed_frames == 0


def test_update_publishes_its_levels_with_the_venue_sequence() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, seqId=10, prevSeqId=-1)
    driver.book("update", [level("100.4", "0")], [level("100.7", "1")], seqId=11, prevSeqId=10)
    (delta,) = driver.recorder.at(1)
    assert delta == BookDelta(
        "okx", TEST_SYMBOL, ((1004, 0),), ((1007, 1000),), 11, 11, 1652459225464 * 1_000_000, 1
    )
    assert driver.feed.stats.level_updates == 2
    assert driver.feed.stats.checksum_checks == 2


def test_sequence_gap_invalidates_the_book() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, seqId=10, prevSeqId=-1)
    driver.book("update", [level("100.5", "1")], [], seqId=11, prevSeqId=10)
    driver.book("update", [level("100.5", "2")], [], seqId=13, prevSeqId=12)
    (status,) = driver.recorder.at(2)
    assert status.state is BookState.INVALID and "gap" in status.reason
    assert driver.feed.stats.gaps == 1
    assert driver.state is BookState.INVALID
    driver.book("update", [level("100.5", "3")], [], seqId=14, prevSeqId=13)
    assert driver.recorder.at(3) == []


def test_heartbeat_update_repeating_the_seq_id_is_not_a_gap() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, seqId=10, prevSeqId=-1)
    driver.book("update", [], [], seqId=10, prevSeqId=10)
    driver.book("update", [level("100.5", "1")], [], seqId=11, prevSeqId=10)
    assert driver.feed.stats.gaps == 0
    assert driver.state is BookState.VALID
    assert driver.recorder.at(1) == []  # nothing changed, nothing published
    assert len(driver.recorder.at(2)) == 1


def test_crossed_book_is_invalid_even_with_a_matching_checksum() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    driver.book("update", [level("100.6", "1")], [])
    (status,) = driver.recorder.at(1)
    assert status.state is BookState.INVALID and status.reason == "crossed book"
    assert driver.feed.stats.crossed_books == 1
    assert driver.feed.stats.checksum_failures == 0


def test_snapshot_with_a_wrong_checksum_is_not_published() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, checksum=12345)
    (status,) = driver.recorder.at(0)
    assert status.state is BookState.INVALID and "checksum" in status.reason
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    assert [type(e) for e in driver.recorder.at(1)] == [BookStatus, BookSnapshot]
    assert driver.feed.stats.resyncs == 1
    assert driver.feed.stats.checksum_failures == 1


def test_zero_checksum_means_the_venue_sent_none() -> None:
    # OKX has sent 0 in the field since deprecating it (June 2026).
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, checksum=0, seqId=1)
    driver.book("update", [level("100.5", "9")], [], checksum=0, seqId=2, prevSeqId=1)
    assert driver.state is BookState.VALID
    assert driver.feed.stats.checksum_checks == 0
    assert driver.feed.stats.book_updates == 1


def test_shallow_channel_publishes_a_snapshot_then_differences() -> None:
    driver = Driver(channel="books5")
    driver.book(None, SNAPSHOT_BIDS, SNAPSHOT_ASKS, instId=TEST_SYMBOL, seqId=5)
    driver.book(
        None,
        [level("100.5", "1.5"), level("100.4", "2.5")],
        [level("100.6", "3"), level("101", "0.25"), level("101.1", "7")],
        instId=TEST_SYMBOL,
        seqId=6,
    )
    assert [type(e) for e in driver.recorder.at(0)] == [BookStatus, BookSnapshot]
    (delta,) = driver.recorder.at(1)
    assert isinstance(delta, BookDelta)
    assert delta.bids == ((1004, 2500), (990, 0))
    assert delta.asks == ((1011, 7000),)
    assert delta.sequence == 6
    book = driver.feed.book(TEST_SYMBOL)
    assert book is not None
    assert book.bid_levels() == [(1005, 1500), (1004, 2500)]
    assert driver.feed.stats.checksum_checks == 0


def test_one_book_channel_per_instrument() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    driver.channel = "bbo-tbt"
    driver.book(None, [level("100.5", "1")], [level("100.6", "1")])
    assert driver.recorder.at(1) == []
    assert driver.state is BookState.VALID


MALFORMED = {
    "truncated json": b'{"arg":{"channel":"books","instId":"TST-USDT"},"action":"upd',
    "not an object": b"[1, 2, 3]",
    "not json": b"\xff\xfe garbage",
    "missing arg": b'{"data":[]}',
    "unknown channel": b'{"arg":{"channel":"candle1m","instId":"TST-USDT"},"data":[]}',
    "unknown action": b'{"arg":{"channel":"books","instId":"TST-USDT"},"action":"x","data":[]}',
    "data not a list": b'{"arg":{"channel":"trades","instId":"TST-USDT"},"data":{}}',
    "instId not a string": b'{"arg":{"channel":"trades","instId":7},"data":[]}',
    "price as a number": (
        b'{"arg":{"channel":"trades","instId":"TST-USDT"},"data":[{"instId":"TST-USDT",'
        b'"tradeId":"1","px":100.5,"sz":"1","side":"buy","ts":"1"}]}'
    ),
    "finer than the tick": (
        b'{"arg":{"channel":"trades","instId":"TST-USDT"},"data":[{"instId":"TST-USDT",'
        b'"tradeId":"1","px":"100.55","sz":"1","side":"buy","ts":"1"}]}'
    ),
    "unknown side": (
        b'{"arg":{"channel":"trades","instId":"TST-USDT"},"data":[{"instId":"TST-USDT",'
        b'"tradeId":"1","px":"100.5","sz":"1","side":"up","ts":"1"}]}'
    ),
    "ticker missing a field": (
        b'{"arg":{"channel":"tickers","instId":"TST-USDT"},"data":[{"bidPx":"1","bidSz":"1",'
        b'"askPx":"2","ts":"1"}]}'
    ),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_are_counted_and_processing_continues(payload: bytes) -> None:
    driver = Driver()
    driver.send(payload)
    assert driver.feed.stats.malformed_frames == 1
    assert driver.feed.stats.frames == 1
    assert driver.recorder.events == []
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    assert driver.state is BookState.VALID
    assert driver.feed.stats.malformed_frames == 1


@pytest.mark.parametrize(
    "bad_level",
    [
        ["100.5", 1, "0", "1"],  # size as a number
        ["100.55", "1", "0", "1"],  # finer than the tick
        ["100.5", "-1", "0", "1"],  # negative size
        ["100.5"],  # no size
        "100.5:1",  # not a list
    ],
)
def test_malformed_update_invalidates_a_valid_book(bad_level: Any) -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    bids = [level("100.3", "1"), bad_level]
    driver.send_item("update", {"bids": bids, "asks": [], "ts": "1", "checksum": 1})
    assert driver.feed.stats.malformed_frames == 1
    assert driver.state is BookState.INVALID
    (status,) = driver.recorder.at(1)
    assert status.state is BookState.INVALID and "malformed" in status.reason


def test_checksum_of_the_wrong_type_is_malformed() -> None:
    driver = Driver()
    driver.book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    item = {"bids": [level("100.3", "1")], "asks": [], "ts": "1", "checksum": "-914047754"}
    driver.send_item("update", item)
    assert driver.feed.stats.malformed_frames == 1
    assert driver.feed.stats.checksum_failures == 0


def test_events_and_pongs_are_not_malformed(caplog: pytest.LogCaptureFixture) -> None:
    driver = Driver()
    driver.send(b'{"event":"subscribe","arg":{"channel":"books","instId":"TST-USDT"}}')
    driver.send(b"pong")
    with caplog.at_level(logging.WARNING):
        driver.send(b'{"event":"error","code":"60012","msg":"Invalid request"}')
    assert driver.feed.stats.frames == 3
    assert driver.feed.stats.malformed_frames == 0
    assert driver.feed.venue_errors == 1
    assert "60012" in caplog.text


def test_missing_bid_in_a_ticker_is_zero() -> None:
    driver = Driver()
    driver.send(
        {
            "arg": {"channel": "tickers", "instId": TEST_SYMBOL},
            "data": [{"bidPx": "", "bidSz": "", "askPx": "100.6", "askSz": "2", "ts": "5"}],
        }
    )
    (quote,) = driver.recorder.of(Quote)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (0, 0, 1006, 2000)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_on_frame_never_raises_on_damaged_frames(
    data: st.DataObject, okx_frames: list[RawFrame], okx_catalog: dict[str, Instrument]
) -> None:
    feed = OkxFeed(Bus(), okx_catalog)
    for frame in okx_frames[:60]:
        feed.on_frame(frame)
    original = data.draw(st.sampled_from(okx_frames[60:]))
    payload = bytearray(original.payload)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(payload)))
    feed.on_frame(original._replace(payload=bytes(payload[:cut])))
    assert feed.stats.frames == 61
