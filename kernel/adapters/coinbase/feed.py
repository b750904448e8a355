"""Coinbase Advanced Trade market data: raw frames to verified books, quotes and trades on the bus.

Every message of the Advanced Trade websocket is an envelope
``{"channel", "timestamp", "sequence_num", "events": [...]}`` (see
``docs/venues.md`` for the pages these rules come from):

* ``sequence_num`` counts the messages of one connection, across all its
  channels: each must be the previous plus one. A jump means messages were
  lost, and nothing says which channel they belonged to, so every book fed by
  that connection becomes INVALID and a resync is requested for each
  (:attr:`CoinbaseFeed.resync_requests`). A number at or below the last one is
  a duplicate or late message and is dropped.
* ``l2_data`` (the ``level2`` subscription) events are a ``snapshot`` that
  replaces the book, then ``update`` events whose ``new_quantity`` is the
  level's new size (``"0"`` removes it); ``side`` is ``bid`` or ``offer``.
* ``market_trades`` ``update`` events become :class:`Trade` events (``side`` is
  the taker's); the ``snapshot`` event that follows a subscription replays
  recent trades already done and is not republished.
* ``ticker`` events carry the best bid and ask, published as :class:`Quote`.
* ``heartbeats`` keep the connection open; their ``heartbeat_counter`` is kept
  (:attr:`CoinbaseFeed.heartbeats`). ``subscriptions``, ``status``, ``candles``
  and ``ticker_batch`` carry nothing the kernel uses; unknown channels are
  ignored, as the venue asks of clients.

A book that is crossed or gets an update that cannot be parsed also becomes
INVALID; level2 updates for it are ignored until its next snapshot. Book and
quote sequences are the message's ``sequence_num``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any

import orjson

from kernel.adapters.base import FeedStats, RawFrame, count_malformed
from kernel.adapters.wire import ResyncRequest, ResyncRequests, rfc3339_to_ns
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

__all__ = ["MIN_SIZE_PRECISION", "VENUE", "CoinbaseFeed"]

log = logging.getLogger(__name__)

VENUE = "coinbase"
MIN_SIZE_PRECISION = 8
"""Sizes of a product outside the catalog get at least this many decimals.

Coinbase writes sizes without trailing zeros (``"0.5"``), so a snapshot can
show fewer decimals than later updates use; 8 covers every base increment.
"""

_VALID = BookState.VALID
_INVALID = BookState.INVALID
_SYNCING = BookState.SYNCING
_SIDES = {"BUY": AggressorSide.BUY, "SELL": AggressorSide.SELL}
_IGNORED_CHANNELS = frozenset({"subscriptions", "status", "candles", "ticker_batch"})
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


class _Product:
    """Everything the feed keeps for one product."""

    __slots__ = (
        "book",
        "book_topic",
        "connection",
        "instrument",
        "price",
        "quote_topic",
        "seen_book",
        "size",
        "snapshot_topic",
        "state",
        "status_topic",
        "symbol",
        "trade_topic",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = L2Book()
        self.state = _SYNCING
        self.seen_book = False
        self.connection = ""
        self.instrument: Instrument | None = None
        self.price: FixedConverter | None = None
        self.size: FixedConverter | None = None
        self.book_topic = topics.book(VENUE, symbol)
        self.snapshot_topic = topics.snapshot(VENUE, symbol)
        self.status_topic = topics.book_status(VENUE, symbol)
        self.quote_topic = topics.quote(VENUE, symbol)
        self.trade_topic = topics.trade(VENUE, symbol)


class CoinbaseFeed:
    """The Coinbase Advanced Trade market-data feed (see the module docstring for the rules).

    ``instruments`` maps a product id (``BTC-USD``) to its :class:`Instrument`;
    a product it does not hold takes its precisions from its first level2
    snapshot (the most decimals seen, sizes at least :data:`MIN_SIZE_PRECISION`),
    and its trades and tickers are dropped until then. ``on_resync`` is called
    with each :class:`ResyncRequest`.
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
        """``error`` messages from the venue."""
        self.late_messages = 0
        """Messages dropped because their ``sequence_num`` was not above the last one."""
        self.heartbeats: dict[str, int] = {}
        """The last ``heartbeat_counter`` seen on each connection."""
        self.resync_requests = ResyncRequests(on_resync)
        self._publish = bus.publish
        self._catalog: dict[str, Instrument] = dict(instruments or {})
        self._products: dict[str, _Product] = {}
        self._last_sequence: dict[str, int] = {}
        self._converters: dict[int, FixedConverter] = {}
        self._warned: set[str] = set()
        self._channels: dict[str, Callable[[list[Any], int, int, RawFrame], None]] = {
            "l2_data": self._on_level2,
            "market_trades": self._on_trades,
            "ticker": self._on_ticker,
            "heartbeats": self._on_heartbeats,
        }

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
            self._on_message(message, frame)
            if started and latency is not None:
                latency.handled(started)
        except _MALFORMED as exc:
            self._malformed(frame, exc)
        except Exception:
            # Never raise into the transport; this is a bug, so keep the traceback.
            self.stats.malformed_frames += 1
            log.exception("Coinbase frame from %s failed: %.200r", frame.source, frame.payload)

    @property
    def symbols(self) -> list[str]:
        """Return the products whose level2 messages the feed has seen."""
        return sorted(symbol for symbol, entry in self._products.items() if entry.seen_book)

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol`` (None when no level2 message for it was seen)."""
        entry = self._products.get(symbol)
        return entry.book if entry is not None and entry.seen_book else None

    def book_state(self, symbol: str) -> BookState:
        """Return whether ``symbol``'s book is syncing, valid or invalid."""
        entry = self._products.get(symbol)
        return _SYNCING if entry is None else entry.state

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument whose precisions scale ``symbol``'s prices and sizes."""
        entry = self._products.get(symbol)
        if entry is not None and entry.instrument is not None:
            return entry.instrument
        return self._catalog.get(symbol)

    # -- envelope and sequence -----------------------------------------------

    def _on_message(self, message: dict[str, Any], frame: RawFrame) -> None:
        if message.get("type") == "error":
            self.venue_errors += 1
            log.warning("Coinbase error: %s", message.get("message"))
            return
        channel = message["channel"]
        sequence = message["sequence_num"]
        events = message["events"]
        if type(sequence) is not int or sequence < 0:
            raise TypeError("sequence_num must be a non-negative integer")
        if type(events) is not list:
            raise TypeError("events must be a list")
        connection = frame.source
        last = self._last_sequence.get(connection)
        if last is not None and sequence != last + 1:
            if sequence == 0:
                # Numbering starts again: a new connection to the same address.
                self.connection_lost("sequence_num restarted at 0", frame.recv_ns, connection)
            elif sequence <= last:
                self.late_messages += 1
                log.debug(
                    "Coinbase %s: sequence_num %d after %d dropped", connection, sequence, last
                )
                return
            else:
                self.stats.gaps += 1
                reason = f"gap: sequence_num {sequence} after {last}"
                self._connection_gap(connection, reason, frame.recv_ns)
        self._last_sequence[connection] = sequence
        handler = self._channels.get(channel)
        if handler is not None:
            stamp = message.get("timestamp")
            ts_event = rfc3339_to_ns(stamp) if stamp is not None else 0
            handler(events, sequence, ts_event, frame)
        elif channel not in _IGNORED_CHANNELS:
            self._warn_once(f"channel:{channel}", "Coinbase channel %r ignored", channel)

    def connection_lost(self, reason: str, recv_ns: int, connection: str | None = None) -> None:
        """Invalidate the books of ``connection`` (every book when None) and forget its sequence.

        A new connection numbers its messages from 0 again; each book resyncs
        from the snapshot its new level2 subscription brings.
        """
        for entry in self._products.values():
            if entry.seen_book and connection in (None, entry.connection):
                self._invalidate(entry, f"connection lost: {reason}", recv_ns)
        if connection is None:
            self._last_sequence.clear()
        else:
            self._last_sequence.pop(connection, None)

    def _connection_gap(self, connection: str, reason: str, recv_ns: int) -> None:
        """Invalidate every book the connection feeds: the lost messages may be theirs."""
        for entry in self._products.values():
            if entry.connection == connection and entry.state is _VALID:
                self._invalidate(entry, reason, recv_ns)

    # -- level2 --------------------------------------------------------------

    def _product(self, symbol: Any) -> _Product:
        if type(symbol) is not str or not symbol:
            raise TypeError(f"product_id {symbol!r} is not a string")
        entry = self._products.get(symbol)
        if entry is None:
            entry = self._products[symbol] = _Product(symbol)
            instrument = self._catalog.get(symbol)
            if instrument is not None:
                self._set_instrument(entry, instrument)
        return entry

    def _converter(self, precision: int) -> FixedConverter:
        converter = self._converters.get(precision)
        if converter is None:
            converter = self._converters[precision] = FixedConverter(precision)
        return converter

    def _set_instrument(self, entry: _Product, instrument: Instrument) -> None:
        entry.instrument = instrument
        entry.price = self._converter(instrument.price_precision)
        entry.size = self._converter(instrument.size_precision)

    def _derive_instrument(self, entry: _Product, updates: list[Any]) -> None:
        instrument = Instrument(
            VENUE,
            entry.symbol,
            max((decimal_places(update["price_level"]) for update in updates), default=0),
            max([MIN_SIZE_PRECISION, *(decimal_places(u["new_quantity"]) for u in updates)]),
        )
        self._warn_once(
            f"derived:{entry.symbol}",
            "Coinbase %s is not in the instrument catalog; precisions from its snapshot: "
            "price %d, size %d decimals",
            entry.symbol,
            instrument.price_precision,
            instrument.size_precision,
        )
        self._set_instrument(entry, instrument)

    @staticmethod
    def _levels(entry: _Product, updates: Any) -> tuple[list[Level], list[Level]]:
        if type(updates) is not list:
            raise TypeError("updates must be a list")
        price = entry.price
        size = entry.size
        assert price is not None and size is not None
        bids: list[Level] = []
        asks: list[Level] = []
        for update in updates:
            p = price[update["price_level"]]
            s = size[update["new_quantity"]]
            if p <= 0 or s < 0:
                raise ValueError(f"invalid level {update!r}: price must be > 0 and size >= 0")
            side = update["side"]
            if side == "bid":
                bids.append((p, s))
            elif side == "offer":
                asks.append((p, s))
            else:
                raise ValueError(f"unknown side {side!r}")
        return bids, asks

    def _on_level2(self, events: list[Any], sequence: int, ts_event: int, frame: RawFrame) -> None:
        for event in events:
            entry = self._product(event["product_id"])
            entry.seen_book = True
            kind = event["type"]
            if kind == "snapshot":
                self._load(entry, event["updates"], sequence, ts_event, frame)
            elif kind == "update":
                self._apply(entry, event["updates"], sequence, ts_event, frame)
            else:
                raise ValueError(f"unknown l2_data event type {kind!r}")

    def _load(
        self, entry: _Product, updates: Any, sequence: int, ts_event: int, frame: RawFrame
    ) -> None:
        recv_ns = frame.recv_ns
        try:
            if entry.price is None:
                self._derive_instrument(entry, updates)
            bids, asks = self._levels(entry, updates)
        except _MALFORMED:
            if entry.state is _VALID:
                self._invalidate(entry, "malformed snapshot", recv_ns)
            raise
        book = entry.book
        book.load(bids, asks, sequence)
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        entry.connection = frame.source
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
                BookStatus(VENUE, entry.symbol, _VALID, "level2 snapshot", sequence, recv_ns),
            )
        self._publish(
            entry.snapshot_topic,
            BookSnapshot(
                VENUE,
                entry.symbol,
                tuple(book.bid_levels()),
                tuple(book.ask_levels()),
                sequence,
                ts_event,
                recv_ns,
            ),
        )

    def _apply(
        self, entry: _Product, updates: Any, sequence: int, ts_event: int, frame: RawFrame
    ) -> None:
        if entry.state is not _VALID:
            return  # waiting for a snapshot
        if frame.source != entry.connection:
            self._warn_once(
                f"connection:{entry.symbol}",
                "Coinbase %s: level2 updates from %s ignored; its book follows %s",
                entry.symbol,
                frame.source,
                entry.connection,
            )
            return
        recv_ns = frame.recv_ns
        try:
            bids, asks = self._levels(entry, updates)
        except _MALFORMED:
            self._invalidate(entry, "malformed update", recv_ns)
            raise
        book = entry.book
        book.apply(bids, asks)
        book.sequence = sequence
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        if not self._not_crossed(entry, recv_ns):
            return
        stats = self.stats
        stats.book_updates += 1
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
                    sequence,
                    sequence,
                    ts_event,
                    recv_ns,
                ),
            )

    def _not_crossed(self, entry: _Product, recv_ns: int) -> bool:
        book = entry.book
        bid = book.best_bid_price()
        ask = book.best_ask_price()
        if bid is not None and ask is not None and bid >= ask:
            self.stats.crossed_books += 1
            self._invalidate(entry, f"crossed: bid {bid} >= ask {ask}", recv_ns)
            return False
        return True

    def _invalidate(self, entry: _Product, reason: str, recv_ns: int) -> None:
        """Clear the book, announce it cannot be trusted, and ask for a new level2 snapshot."""
        sequence = entry.book.sequence
        entry.book.clear()
        if entry.state is _INVALID:
            return
        entry.state = _INVALID
        log.warning("Coinbase %s book invalid: %s", entry.symbol, reason)
        self._publish(
            entry.status_topic,
            BookStatus(VENUE, entry.symbol, _INVALID, reason, sequence, recv_ns),
        )
        self.resync_requests.request(VENUE, entry.connection, f"level2:{entry.symbol}", reason)

    # -- trades, tickers, heartbeats -----------------------------------------

    def _priced(self, symbol: Any) -> _Product | None:
        entry = self._product(symbol)
        if entry.price is None:
            self._warn_once(
                f"precision:{symbol}",
                "Coinbase %s: no precision yet (not in the catalog and no level2 snapshot);"
                " dropping its trades and tickers until it is known",
                symbol,
            )
            return None
        return entry

    def _on_trades(self, events: list[Any], sequence: int, ts_event: int, frame: RawFrame) -> None:
        published: list[tuple[str, Trade]] = []
        for event in events:
            if event["type"] != "update":
                continue  # the subscription's replay of recent trades
            for item in event["trades"]:
                entry = self._priced(item["product_id"])
                if entry is None:
                    continue
                price = entry.price
                size = entry.size
                assert price is not None and size is not None
                p = price[item["price"]]
                s = size[item["size"]]
                if p <= 0 or s <= 0:
                    raise ValueError("trade price and size must be > 0")
                trade_id = item["trade_id"]
                if type(trade_id) is not str:
                    raise TypeError("trade_id must be a string")
                trade = Trade(
                    VENUE,
                    entry.symbol,
                    p,
                    s,
                    _SIDES[item["side"]],
                    trade_id,
                    rfc3339_to_ns(item["time"]),
                    frame.recv_ns,
                )
                published.append((entry.trade_topic, trade))
        for topic, trade in published:
            self.stats.trades += 1
            self._publish(topic, trade)

    def _on_ticker(self, events: list[Any], sequence: int, ts_event: int, frame: RawFrame) -> None:
        published: list[tuple[str, Quote]] = []
        for event in events:
            for item in event["tickers"]:
                entry = self._priced(item["product_id"])
                if entry is None:
                    continue
                price = entry.price
                size = entry.size
                assert price is not None and size is not None
                quote = Quote(
                    VENUE,
                    entry.symbol,
                    price[item["best_bid"]],
                    size[item["best_bid_quantity"]],
                    price[item["best_ask"]],
                    size[item["best_ask_quantity"]],
                    sequence,
                    ts_event,
                    frame.recv_ns,
                )
                if quote.bid_size < 0 or quote.ask_size < 0 or quote.bid_price < 0:
                    raise ValueError("ticker prices and sizes must not be negative")
                published.append((entry.quote_topic, quote))
        for topic, quote in published:
            self.stats.quotes += 1
            self._publish(topic, quote)

    def _on_heartbeats(
        self, events: list[Any], sequence: int, ts_event: int, frame: RawFrame
    ) -> None:
        for event in events:
            counter = event["heartbeat_counter"]
            # Documented as a string, sent as an integer by the production feed.
            self.heartbeats[frame.source] = int(counter)

    # -- errors --------------------------------------------------------------

    def _malformed(self, frame: RawFrame, exc: Exception) -> None:
        count_malformed(self.stats, log, "Coinbase", frame, exc)

    def _warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)
