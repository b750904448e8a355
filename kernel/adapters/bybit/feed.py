"""Bybit v5 public market data: raw frames to verified books, quotes and trades on the bus.

Book rules (Bybit v5 "Orderbook" stream, see ``docs/venues.md``):

* Topics are ``orderbook.{depth}.{symbol}``; every message is a ``snapshot`` or
  a ``delta``. A snapshot always resets the book — the first one after
  subscribing, one Bybit re-sends after a problem on its side, the snapshot
  with ``u == 1`` sent after a service restart, and the level-1 snapshot
  linear and inverse re-push every 3 s with an unchanged ``u``.
* A delta sets a level's size; size 0 deletes it. Its update id ``u`` must be
  the previous message's ``u`` plus one; anything else is a gap.
* Spot, linear, inverse and option streams use the same topic names
  (``orderbook.50.BTCUSDT`` is a spot book on one connection and a perpetual's
  on another), so books are keyed by connection (the frame source) and topic.
  A book's symbol on the bus carries the market, taken from the connection
  URL's last path segment (``wss://stream.bybit.com/v5/public/linear`` →
  ``linear:BTCUSDT``); a source that names no market leaves the bare symbol.
* Depth-1 topics are Bybit's top of book: they are kept and checked like any
  book but published as :class:`Quote` events; deeper topics publish
  :class:`BookSnapshot`/:class:`BookDelta` with ``u`` as the sequence.

A gap, a crossed book or a delta that cannot be parsed makes the book INVALID:
it is cleared, a :class:`BookStatus` says why, a resync of the topic is
requested (:attr:`BybitFeed.resync_requests`) and deltas are ignored until the
next snapshot. ``publicTrade.{symbol}`` messages become :class:`Trade` events
(``S`` is the taker's side).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

import orjson

from kernel.adapters.base import FeedStats, RawFrame, count_malformed
from kernel.adapters.wire import ResyncRequest, ResyncRequests
from kernel.book import L2Book
from kernel.bus import topics
from kernel.bus.bus import Bus
from kernel.metrics import StageLatency, TickToOrder
from tradekernel_sdk.fixedpoint import FixedConverter, decimal_places
from tradekernel_sdk.types import (
    AggressorSide,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    Quote,
    Trade,
)

__all__ = ["MARKETS", "VENUE", "BybitFeed", "market_of"]

log = logging.getLogger(__name__)

VENUE = "bybit"
MARKETS = frozenset({"spot", "linear", "inverse", "option"})
"""The v5 public endpoints' last path segments."""

_VALID = BookState.VALID
_INVALID = BookState.INVALID
_SYNCING = BookState.SYNCING
_SIDES = {"Buy": AggressorSide.BUY, "Sell": AggressorSide.SELL}
_MS = 1_000_000
# Topics a client may subscribe that the kernel does not use.
_UNUSED_TOPICS = frozenset({"tickers", "kline", "liquidation", "allLiquidation", "lt"})
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def market_of(connection: str) -> str:
    """Return the market a v5 public connection URL serves (``""`` when it names none)."""
    last = urlsplit(connection).path.rstrip("/").rpartition("/")[2]
    return last if last in MARKETS else ""


class _Book:
    """One topic's book on one connection."""

    __slots__ = (
        "book",
        "book_topic",
        "connection",
        "count",
        "depth",
        "instrument",
        "last_u",
        "price",
        "quote_topic",
        "size",
        "snapshot_topic",
        "state",
        "status_topic",
        "symbol",
        "topic",
    )

    def __init__(self, connection: str, topic: str, symbol: str, depth: int) -> None:
        self.connection = connection
        self.topic = topic
        self.symbol = symbol
        self.depth = depth
        self.book = L2Book()
        self.state = _SYNCING
        self.last_u = 0
        self.count = 0
        self.instrument: Instrument | None = None
        self.price: FixedConverter | None = None
        self.size: FixedConverter | None = None
        self.book_topic = topics.book(VENUE, symbol)
        self.snapshot_topic = topics.snapshot(VENUE, symbol)
        self.status_topic = topics.book_status(VENUE, symbol)
        self.quote_topic = topics.quote(VENUE, symbol)


def _levels(raw: Any, price: FixedConverter, size: FixedConverter) -> list[Level]:
    if type(raw) is not list:
        raise TypeError("levels must be a list")
    out: list[Level] = []
    for level in raw:
        p = price[level[0]]
        s = size[level[1]]
        if p <= 0 or s < 0:
            raise ValueError(f"invalid level {level!r}: price must be > 0 and size >= 0")
        out.append((p, s))
    return out


class BybitFeed:
    """The Bybit v5 public websocket feed (see the module docstring for the rules).

    ``instruments`` maps a symbol — market-qualified (``linear:BTCUSDT``) or
    bare (``BTCUSDT``, for every market) — to its :class:`Instrument`; a book
    it does not cover takes its precisions from its first snapshot (the most
    decimals seen). ``on_resync`` is called with each :class:`ResyncRequest`.
    """

    def __init__(
        self,
        bus: Bus,
        instruments: Mapping[str, Instrument] | None = None,
        *,
        latency: StageLatency | None = None,
        probe: TickToOrder | None = None,
        on_resync: Callable[[ResyncRequest], None] | None = None,
    ) -> None:
        self.venue = VENUE
        self.latency = latency
        self.probe = probe
        self.stats = FeedStats()
        self.venue_errors = 0
        """Failed operations answered by the venue (rejected subscriptions, ...)."""
        self.resync_requests = ResyncRequests(on_resync)
        self._publish = bus.publish
        self._catalog: dict[str, Instrument] = dict(instruments or {})
        self._books: dict[tuple[str, str], _Book] = {}
        # The deepest book published under each symbol, for the Feed lookups.
        self._by_symbol: dict[str, _Book] = {}
        self._instruments: dict[str, Instrument] = {}
        self._converters: dict[int, FixedConverter] = {}
        self._trade_topics: dict[str, str] = {}
        self._warned: set[str] = set()

    # -- Feed protocol -------------------------------------------------------

    def on_frame(self, frame: RawFrame) -> None:
        """Process one raw frame; malformed input is counted and logged, never raised."""
        self.stats.frames += 1
        if self.probe is not None:
            self.probe.frame_ns = perf_counter_ns()
        latency = self.latency
        started = latency.start() if latency is not None else 0
        try:
            message = orjson.loads(frame.payload)
            if started and latency is not None:
                started = latency.parsed(started)
            if type(message) is not dict:
                raise TypeError("frame is not a JSON object")
            topic = message.get("topic")
            if topic is None:
                self._on_operation(message)
                return
            if type(topic) is not str:
                raise TypeError("topic must be a string")
            kind, _, rest = topic.partition(".")
            if kind == "orderbook":
                self._on_orderbook(topic, rest, message, frame)
            elif kind == "publicTrade":
                self._on_trades(rest, message, frame)
            elif kind not in _UNUSED_TOPICS:
                raise ValueError(f"unknown topic {topic!r}")
            if started and latency is not None:
                latency.handled(started)
        except _MALFORMED as exc:
            self._malformed(frame, exc)
        except Exception:
            # Never raise into the transport; this is a bug, so keep the traceback.
            self.stats.malformed_frames += 1
            log.exception("Bybit frame from %s failed: %.200r", frame.source, frame.payload)

    @property
    def symbols(self) -> list[str]:
        """Return the symbols of the books the feed has seen (depth-1 topics excluded)."""
        return sorted(self._by_symbol)

    def book(self, symbol: str) -> L2Book | None:
        """Return the deepest book published under ``symbol`` (None when none was seen)."""
        entry = self._by_symbol.get(symbol)
        return None if entry is None else entry.book

    def book_state(self, symbol: str) -> BookState:
        """Return whether ``symbol``'s book is syncing, valid or invalid."""
        entry = self._by_symbol.get(symbol)
        return _SYNCING if entry is None else entry.state

    def book_of(self, connection: str, topic: str) -> L2Book | None:
        """Return the book of ``topic`` on ``connection`` (depth-1 topics included)."""
        entry = self._books.get((connection, topic))
        return None if entry is None else entry.book

    def book_state_of(self, connection: str, topic: str) -> BookState:
        """Return the state of the book of ``topic`` on ``connection``."""
        entry = self._books.get((connection, topic))
        return _SYNCING if entry is None else entry.state

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument whose precisions scale ``symbol``'s prices and sizes."""
        return self._instruments.get(symbol) or self._catalog_entry(symbol)

    # -- routing -------------------------------------------------------------

    def _on_operation(self, message: dict[str, Any]) -> None:
        """Handle an answer to a request (subscribe, ping)."""
        if message.get("success") is False:
            self.venue_errors += 1
            log.warning("Bybit %s failed: %s", message.get("op"), message.get("ret_msg"))
        elif "op" not in message:
            raise ValueError("neither a topic message nor an operation answer")

    def _catalog_entry(self, symbol: str) -> Instrument | None:
        instrument = self._catalog.get(symbol)
        if instrument is None:
            instrument = self._catalog.get(symbol.rpartition(":")[2])
        return instrument

    def _converter(self, precision: int) -> FixedConverter:
        converter = self._converters.get(precision)
        if converter is None:
            converter = self._converters[precision] = FixedConverter(precision)
        return converter

    def _symbol_name(self, connection: str, symbol: str) -> str:
        market = market_of(connection)
        return f"{market}:{symbol}" if market else symbol

    def _entry(self, connection: str, topic: str, rest: str) -> _Book:
        depth_text, _, symbol = rest.partition(".")
        if not symbol or not depth_text.isdigit():
            raise ValueError(f"orderbook topic {topic!r} is not orderbook.<depth>.<symbol>")
        name = self._symbol_name(connection, symbol)
        entry = _Book(connection, topic, name, int(depth_text))
        self._books[(connection, topic)] = entry
        if entry.depth > 1:
            known = self._by_symbol.get(name)
            if known is None or known.depth <= entry.depth:
                if known is not None:
                    self._warn_once(
                        f"shared:{name}",
                        "Bybit %s: several order book topics publish under one symbol; "
                        "%s on %s is the one published",
                        name,
                        topic,
                        connection,
                    )
                self._by_symbol[name] = entry
        return entry

    def _set_precision(self, entry: _Book, data: dict[str, Any]) -> None:
        instrument = self._instruments.get(entry.symbol) or self._catalog_entry(entry.symbol)
        if instrument is None:
            levels = [*data["b"], *data["a"]]
            instrument = Instrument(
                VENUE,
                entry.symbol,
                max((decimal_places(level[0]) for level in levels), default=0),
                max((decimal_places(level[1]) for level in levels), default=0),
            )
            self._warn_once(
                f"derived:{entry.symbol}",
                "Bybit %s is not in the instrument catalog; precisions from its snapshot: "
                "price %d, size %d decimals",
                entry.symbol,
                instrument.price_precision,
                instrument.size_precision,
            )
        self._instruments.setdefault(entry.symbol, instrument)
        entry.instrument = instrument
        entry.price = self._converter(instrument.price_precision)
        entry.size = self._converter(instrument.size_precision)

    # -- books ---------------------------------------------------------------

    def _on_orderbook(
        self, topic: str, rest: str, message: dict[str, Any], frame: RawFrame
    ) -> None:
        connection = frame.source
        entry = self._books.get((connection, topic))
        if entry is None:
            entry = self._entry(connection, topic, rest)
        kind = message["type"]
        data = message["data"]
        if type(data) is not dict:
            raise TypeError("data must be an object")
        update_id = data["u"]
        if type(update_id) is not int:
            raise TypeError("u must be an integer")
        ts_event = int(message.get("cts") or message["ts"]) * _MS
        if kind == "snapshot":
            self._load(entry, data, update_id, ts_event, frame.recv_ns)
        elif kind == "delta":
            self._apply(entry, data, update_id, ts_event, frame.recv_ns)
        else:
            raise ValueError(f"unknown orderbook message type {kind!r}")

    def _load(
        self, entry: _Book, data: dict[str, Any], update_id: int, ts_event: int, recv_ns: int
    ) -> None:
        try:
            if entry.price is None:
                self._set_precision(entry, data)
            price = entry.price
            size = entry.size
            assert price is not None and size is not None
            bids = _levels(data["b"], price, size)
            asks = _levels(data["a"], price, size)
        except _MALFORMED:
            if entry.state is _VALID:
                self._invalidate(entry, "malformed snapshot", recv_ns)
            raise
        if update_id == 1 and entry.state is _VALID:
            log.info(
                "Bybit %s %s: snapshot with u=1 (service restart)", entry.connection, entry.topic
            )
        book = entry.book
        book.load(bids, asks, update_id)
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        entry.last_u = update_id
        if not self._not_crossed(entry, recv_ns):
            return
        self.stats.book_updates += 1
        previous = entry.state
        if previous is not _VALID:
            entry.state = _VALID
            if previous is _INVALID:
                self.stats.resyncs += 1
            self._publish(
                entry.status_topic,
                BookStatus(VENUE, entry.symbol, _VALID, "snapshot", update_id, recv_ns),
            )
        if entry.depth == 1:
            self._publish_top(entry, update_id, ts_event, recv_ns)
            return
        self._publish(
            entry.snapshot_topic,
            BookSnapshot(
                VENUE,
                entry.symbol,
                tuple(book.bid_levels()),
                tuple(book.ask_levels()),
                update_id,
                ts_event,
                recv_ns,
            ),
        )

    def _apply(
        self, entry: _Book, data: dict[str, Any], update_id: int, ts_event: int, recv_ns: int
    ) -> None:
        if entry.state is not _VALID:
            return  # waiting for a snapshot
        if update_id != entry.last_u + 1:
            self.stats.gaps += 1
            self._invalidate(entry, f"gap: u={update_id} after u={entry.last_u}", recv_ns)
            return
        price = entry.price
        size = entry.size
        assert price is not None and size is not None
        try:
            bids = _levels(data["b"], price, size)
            asks = _levels(data["a"], price, size)
        except _MALFORMED:
            self._invalidate(entry, "malformed delta", recv_ns)
            raise
        book = entry.book
        book.apply(bids, asks)
        book.sequence = update_id
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        entry.last_u = update_id
        if not self._not_crossed(entry, recv_ns):
            return
        stats = self.stats
        stats.book_updates += 1
        if entry.depth == 1:
            self._publish_top(entry, update_id, ts_event, recv_ns)
            return
        changed = len(bids) + len(asks)
        if changed:
            stats.level_updates += changed
            self._publish(
                entry.book_topic,
                BookDelta(
                    VENUE,
                    entry.symbol,
                    tuple(bids),
                    tuple(asks),
                    update_id,
                    update_id,
                    ts_event,
                    recv_ns,
                ),
            )

    def _publish_top(self, entry: _Book, update_id: int, ts_event: int, recv_ns: int) -> None:
        book = entry.book
        bid = book.best_bid()
        ask = book.best_ask()
        bid_price, bid_size = bid if bid is not None else (0, 0)
        ask_price, ask_size = ask if ask is not None else (0, 0)
        self.stats.quotes += 1
        self._publish(
            entry.quote_topic,
            Quote(
                VENUE,
                entry.symbol,
                bid_price,
                bid_size,
                ask_price,
                ask_size,
                update_id,
                ts_event,
                recv_ns,
            ),
        )

    def _not_crossed(self, entry: _Book, recv_ns: int) -> bool:
        book = entry.book
        bid = book.best_bid_price()
        ask = book.best_ask_price()
        if bid is not None and ask is not None and bid >= ask:
            self.stats.crossed_books += 1
            self._invalidate(entry, f"crossed: bid {bid} >= ask {ask}", recv_ns)
            return False
        return True

    def connection_lost(self, reason: str, recv_ns: int, connection: str | None = None) -> None:
        """Invalidate the books of ``connection`` (every book when None): deltas were missed.

        Each resyncs from the snapshot its new subscription brings.
        """
        for entry in self._books.values():
            if connection in (None, entry.connection):
                self._invalidate(entry, f"connection lost: {reason}", recv_ns)

    def _invalidate(self, entry: _Book, reason: str, recv_ns: int) -> None:
        """Clear the book, announce it cannot be trusted, and ask for the topic again."""
        sequence = entry.last_u
        entry.book.clear()
        if entry.state is _INVALID:
            return
        entry.state = _INVALID
        log.warning(
            "Bybit %s (%s on %s) invalid: %s", entry.symbol, entry.topic, entry.connection, reason
        )
        self._publish(
            entry.status_topic,
            BookStatus(VENUE, entry.symbol, _INVALID, reason, sequence, recv_ns),
        )
        self.resync_requests.request(VENUE, entry.connection, entry.topic, reason)

    # -- trades --------------------------------------------------------------

    def _on_trades(self, symbol: str, message: dict[str, Any], frame: RawFrame) -> None:
        name = self._symbol_name(frame.source, symbol)
        instrument = self._instruments.get(name) or self._catalog_entry(name)
        if instrument is None:
            self._warn_once(
                f"precision:{name}",
                "Bybit %s: no precision yet (not in the catalog and no book snapshot);"
                " dropping its trades until it is known",
                name,
            )
            return
        price = self._converter(instrument.price_precision)
        size = self._converter(instrument.size_precision)
        topic = self._trade_topics.get(name)
        if topic is None:
            topic = self._trade_topics[name] = topics.trade(VENUE, name)
        trades = []
        for item in message["data"]:
            p = price[item["p"]]
            s = size[item["v"]]
            if p <= 0 or s <= 0:
                raise ValueError("trade price and size must be > 0")
            trade_id = item["i"]
            if type(trade_id) is not str:
                raise TypeError("trade id must be a string")
            trades.append(
                Trade(
                    VENUE,
                    name,
                    p,
                    s,
                    _SIDES[item["S"]],
                    trade_id,
                    int(item["T"]) * _MS,
                    frame.recv_ns,
                )
            )
        for trade in trades:
            self.stats.trades += 1
            self._publish(topic, trade)

    # -- errors --------------------------------------------------------------

    def _malformed(self, frame: RawFrame, exc: Exception) -> None:
        count_malformed(self.stats, log, "Bybit", frame, exc)

    def _warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)
