"""OKX v5 public market data: raw frames to verified books, trades and quotes on the bus.

Book channels:

* ``books``, ``books-l2-tbt``, ``books50-l2-tbt``: a ``snapshot`` then ``update``
  actions. Every message's CRC32 ``checksum`` is verified against the book after
  the message is applied, and ``prevSeqId`` must equal the previous ``seqId`` when
  the venue sends them (2022 captures do not).
* ``books5``, ``bbo-tbt``: every message is the whole (shallow) book. The first
  one publishes a :class:`BookSnapshot`; later ones publish the difference to the
  previous message as a :class:`BookDelta`, so subscribers see one kind of stream.

A checksum mismatch, a sequence gap, a crossed book or an update that cannot be
parsed makes the book INVALID: it is cleared, a :class:`BookStatus` says why,
and nothing is published for it until the next snapshot (the live adapter
resubscribes to get one; a replay waits for the next in the data). On every
(re)sync the feed publishes ``BookStatus(VALID)`` and a :class:`BookSnapshot`; a
snapshot arriving while the book is valid publishes the snapshot alone.
Snapshots hold the whole book by default: subscribers rebuild the book from the
snapshot plus the deltas, and a depth-limited snapshot would leave them wrong
below its depth as soon as a delta touched those levels. OKX bounds the depth
(400 levels a side). Since June 2026 OKX sends ``checksum`` 0 (deprecated), which
reads as "no checksum": ``seqId`` continuity is then the only check.

Each book keeps, beside its :class:`L2Book`, the strings received for each live
level (``"px:sz"`` by fixed-point price) and the sorted prices of each side,
which makes the best 25 levels of the checksum two slices.

``BookDelta`` and ``BookSnapshot`` sequences are the venue's ``seqId`` where
present, else a per-book count of applied messages. Tickers carry no sequence
(``Quote.sequence`` is 0); an empty ``bidPx``/``askPx`` (no such side) becomes 0.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any

import orjson

from kernel.adapters.base import FeedStats, RawFrame, count_malformed
from kernel.adapters.okx.checksum import CHECKSUM_DEPTH, checksum_of_pairs
from kernel.adapters.okx.instruments import VENUE, parse_okx_instruments
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

__all__ = ["BOOK_CHANNELS", "SNAPSHOT_CHANNELS", "OkxFeed"]

log = logging.getLogger(__name__)

BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
"""Channels sending a snapshot followed by incremental updates."""
SNAPSHOT_CHANNELS = frozenset({"books5", "bbo-tbt"})
"""Channels whose every message is the whole (depth-limited) book."""
_TRADE_CHANNELS = frozenset({"trades", "trades-all"})

_SIDES = {"buy": AggressorSide.BUY, "sell": AggressorSide.SELL}
_MS_TO_NS = 1_000_000
# Exceptions that mean "the input is not what OKX sends" rather than a bug here.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)
# Warn about the first few malformed frames, then about one in this many.

_VALID = BookState.VALID
_INVALID = BookState.INVALID
_SYNCING = BookState.SYNCING


class _Symbol:
    """Everything the feed keeps for one instrument."""

    __slots__ = (
        "ask_prices",
        "ask_texts",
        "bid_prices",
        "bid_texts",
        "book",
        "book_topic",
        "channel",
        "count",
        "instrument",
        "price",
        "quote_topic",
        "seen_book",
        "seq_id",
        "size",
        "snapshot_topic",
        "state",
        "status_topic",
        "symbol",
        "trade_topic",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.instrument: Instrument | None = None
        # Set together with ``instrument``.
        self.price: FixedConverter | None = None
        self.size: FixedConverter | None = None
        self.book = L2Book()
        self.seen_book = False
        self.state = _SYNCING
        self.channel: str | None = None
        # Received "px:sz" of each live level, and the sorted (ascending) prices.
        self.bid_texts: dict[int, str] = {}
        self.ask_texts: dict[int, str] = {}
        self.bid_prices: list[int] = []
        self.ask_prices: list[int] = []
        self.seq_id: int | None = None
        self.count = 0
        self.book_topic = topics.book(VENUE, symbol)
        self.snapshot_topic = topics.snapshot(VENUE, symbol)
        self.status_topic = topics.book_status(VENUE, symbol)
        self.quote_topic = topics.quote(VENUE, symbol)
        self.trade_topic = topics.trade(VENUE, symbol)

    def clear_levels(self) -> None:
        """Forget every level and the last sequence number."""
        self.book.clear()
        self.bid_texts.clear()
        self.ask_texts.clear()
        self.bid_prices.clear()
        self.ask_prices.clear()
        self.seq_id = None


def _bad_level(level: Any) -> ValueError:
    return ValueError(f"invalid level {level!r}: price must be > 0 and size >= 0")


def _apply_side(
    levels: list[Any],
    texts: dict[int, str],
    prices: list[int],
    price: FixedConverter,
    size: FixedConverter,
) -> list[Level]:
    """Apply one side of an update to the level strings; return the fixed-point levels."""
    out: list[Level] = []
    for level in levels:
        if type(level) is not list:
            raise TypeError(f"level {level!r} is not a list")
        px = level[0]
        sz = level[1]
        p = price[px]
        s = size[sz]
        if p <= 0 or s < 0:
            raise _bad_level(level)
        if s:
            if p not in texts:
                insort(prices, p)
            texts[p] = px + ":" + sz
        elif p in texts:
            del texts[p]
            del prices[bisect_left(prices, p)]
        out.append((p, s))
    return out


def _parse_side(
    levels: list[Any], price: FixedConverter, size: FixedConverter
) -> tuple[dict[int, str], dict[int, int]]:
    """Parse one side of a snapshot into level strings and sizes by price (zero sizes dropped)."""
    texts: dict[int, str] = {}
    sizes: dict[int, int] = {}
    for level in levels:
        if type(level) is not list:
            raise TypeError(f"level {level!r} is not a list")
        px = level[0]
        sz = level[1]
        p = price[px]
        s = size[sz]
        if p <= 0 or s < 0:
            raise _bad_level(level)
        if s:
            texts[p] = px + ":" + sz
            sizes[p] = s
    return texts, sizes


def _book_checksum(state: _Symbol) -> int:
    bid_texts = state.bid_texts
    ask_texts = state.ask_texts
    return checksum_of_pairs(
        [bid_texts[p] for p in state.bid_prices[: -CHECKSUM_DEPTH - 1 : -1]],
        [ask_texts[p] for p in state.ask_prices[:CHECKSUM_DEPTH]],
    )


def _venue_checksum(item: dict[str, Any]) -> int | None:
    """Return the message's checksum, or None when there is none to verify.

    OKX deprecated the field on 23 June 2026: it is still sent but always 0 (OKX
    announcement "Order Book Channels Checksum Field Deprecation", 21 May 2026,
    https://www.okx.com/help/okx-order-book-channels-checksum-field-deprecation).
    A genuine checksum of 0 has odds of 2**-32, so 0 reads as "not sent".
    """
    checksum = item.get("checksum")
    if checksum is None:
        return None
    if type(checksum) is not int:
        raise TypeError(f"checksum is {type(checksum).__name__}, not int")
    return checksum or None


def _optional_int(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is not None and type(value) is not int:
        raise TypeError(f"{key} is {type(value).__name__}, not int")
    return value


class OkxFeed:
    """The OKX v5 public websocket feed (see the module docstring for the rules).

    ``instruments`` maps ``instId`` to its :class:`Instrument` (see
    :func:`~kernel.adapters.okx.load_okx_instruments`). For an instrument it does
    not hold, precision is derived from the first book snapshot (the most decimals
    seen), and trades and tickers arriving before that snapshot are dropped.
    ``snapshot_depth`` limits the levels per side of published snapshots (None:
    the whole book).
    """

    def __init__(
        self,
        bus: Bus,
        instruments: Mapping[str, Instrument] | None = None,
        *,
        snapshot_depth: int | None = None,
        latency: StageLatency | None = None,
        probe: TickToOrder | None = None,
    ) -> None:
        self.venue = VENUE
        self.latency = latency
        self.probe = probe
        self.stats = FeedStats()
        self.venue_errors = 0
        """``error`` events received from the venue (rejected subscriptions, ...)."""
        self._publish = bus.publish
        self._catalog: dict[str, Instrument] = dict(instruments or {})
        self._snapshot_depth = snapshot_depth
        self._symbols: dict[str, _Symbol] = {}
        # Prices and sizes at equal precision convert alike, so converters are shared.
        self._converters_by_precision: dict[int, FixedConverter] = {}
        self._warned: set[str] = set()
        self._channels: dict[str, Callable[[str, str, Any, list[Any], int], None]] = {}
        for channel in BOOK_CHANNELS | SNAPSHOT_CHANNELS:
            self._channels[channel] = self._on_book
        for channel in _TRADE_CHANNELS:
            self._channels[channel] = self._on_trades
        self._channels["tickers"] = self._on_tickers

    # -- Feed protocol -------------------------------------------------------

    def on_frame(self, frame: RawFrame) -> None:
        """Process one raw frame; malformed input is counted and logged, never raised."""
        self.stats.frames += 1
        if self.probe is not None:
            self.probe.frame_ns = perf_counter_ns()
        payload = frame.payload
        if payload == b"pong":
            return
        if frame.source.startswith("rest:") and "/public/instruments" in frame.source:
            self._on_instruments(frame)
            return
        latency = self.latency
        started = latency.start() if latency is not None else 0
        try:
            message = orjson.loads(payload)
            if started and latency is not None:
                started = latency.parsed(started)
            if type(message) is not dict:
                raise TypeError("frame is not a JSON object")
            if "event" in message:
                self._on_event(message)
                return
            arg = message["arg"]
            channel = arg["channel"]
            symbol = arg["instId"]
            data = message["data"]
            if type(symbol) is not str or type(data) is not list:
                raise TypeError("instId must be a string and data a list")
            handler = self._channels.get(channel)
            if handler is None:
                raise ValueError(f"unknown channel {channel!r}")
            handler(channel, symbol, message.get("action"), data, frame.recv_ns)
            if started and latency is not None:
                latency.handled(started)
        except _MALFORMED as exc:
            self._malformed(frame, exc)
        except Exception:
            # Never raise into the transport; this is a bug, so keep the traceback.
            self.stats.malformed_frames += 1
            log.exception("OKX frame from %s failed: %.200r", frame.source, frame.payload)

    @property
    def symbols(self) -> list[str]:
        """Return the instruments whose book messages the feed has seen."""
        return sorted(symbol for symbol, state in self._symbols.items() if state.seen_book)

    def _on_instruments(self, frame: RawFrame) -> None:
        """Add the instruments of a captured REST response to the catalog."""
        try:
            instruments = parse_okx_instruments(frame.payload)
        except ValueError as exc:
            self._malformed(frame, exc)
            return
        for instrument in instruments:
            self._catalog.setdefault(instrument.symbol, instrument)

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol`` (None when no book message for it was seen)."""
        state = self._symbols.get(symbol)
        return state.book if state is not None and state.seen_book else None

    def book_state(self, symbol: str) -> BookState:
        """Return whether ``symbol``'s book is syncing, valid or invalid."""
        state = self._symbols.get(symbol)
        return _SYNCING if state is None else state.state

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument in use for ``symbol`` (from the catalog or derived)."""
        state = self._symbols.get(symbol)
        if state is not None and state.instrument is not None:
            return state.instrument
        return self._catalog.get(symbol)

    # -- instruments ---------------------------------------------------------

    def _new_symbol(self, symbol: str) -> _Symbol:
        state = _Symbol(symbol)
        instrument = self._catalog.get(symbol)
        if instrument is not None:
            self._set_instrument(state, instrument)
        self._symbols[symbol] = state
        return state

    def _set_instrument(self, state: _Symbol, instrument: Instrument) -> None:
        state.instrument = instrument
        state.price = self._converter(instrument.price_precision)
        state.size = self._converter(instrument.size_precision)

    def _converter(self, precision: int) -> FixedConverter:
        converter = self._converters_by_precision.get(precision)
        if converter is None:
            converter = self._converters_by_precision[precision] = FixedConverter(precision)
        return converter

    def _derive_instrument(self, state: _Symbol, bids: list[Any], asks: list[Any]) -> None:
        price_precision = 0
        size_precision = 0
        for level in (*bids, *asks):
            px = level[0]
            sz = level[1]
            if type(px) is not str or type(sz) is not str:
                raise TypeError("price and size must be strings")
            price_precision = max(price_precision, decimal_places(px))
            size_precision = max(size_precision, decimal_places(sz))
        instrument = Instrument(
            venue=VENUE,
            symbol=state.symbol,
            price_precision=price_precision,
            size_precision=size_precision,
        )
        log.info(
            "OKX %s is not in the instrument catalog: using precision %d (price) and %d (size)"
            " from its first snapshot; finer values later are malformed",
            state.symbol,
            price_precision,
            size_precision,
        )
        self._set_instrument(state, instrument)

    # -- books ---------------------------------------------------------------

    def _on_book(
        self, channel: str, symbol: str, action: Any, data: list[Any], recv_ns: int
    ) -> None:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._new_symbol(symbol)
        state.seen_book = True
        if channel in SNAPSHOT_CHANNELS:
            action = "snapshot"
        elif action not in ("update", "snapshot"):
            raise ValueError(f"unknown book action {action!r}")
        if state.state is _VALID and channel != state.channel:
            self._warn_once(
                f"channel:{symbol}:{channel}",
                "OKX %s: ignoring %s, the book follows %s (one book channel per instrument)",
                symbol,
                channel,
                state.channel,
            )
            return
        for item in data:
            if type(item) is not dict:
                raise TypeError("book data item is not an object")
            if action == "update":
                self._apply_update(state, item, recv_ns)
            else:
                self._load_snapshot(state, channel, item, recv_ns)

    def _apply_update(self, state: _Symbol, item: dict[str, Any], recv_ns: int) -> None:
        if state.state is not _VALID:
            return  # no snapshot to apply it to: waiting for one
        stats = self.stats
        try:
            seq_id = _optional_int(item, "seqId")
            prev_seq_id = _optional_int(item, "prevSeqId")
            checksum = _venue_checksum(item)
            ts_event = int(item["ts"]) * _MS_TO_NS
            raw_bids = item["bids"]
            raw_asks = item["asks"]
            last = state.seq_id
            if prev_seq_id is not None and last is not None and prev_seq_id != last:
                stats.gaps += 1
                self._invalidate(state, f"gap: prevSeqId {prev_seq_id} != seqId {last}", recv_ns)
                return
            price = state.price
            size = state.size
            assert price is not None and size is not None  # set by the snapshot
            bids = _apply_side(raw_bids, state.bid_texts, state.bid_prices, price, size)
            asks = _apply_side(raw_asks, state.ask_texts, state.ask_prices, price, size)
        except _MALFORMED:
            # Part of the update may be applied and the rest is unknown.
            self._invalidate(state, "malformed book update", recv_ns)
            raise
        book = state.book
        book.apply(bids, asks)
        if not self._verified(state, checksum, recv_ns, "checksum mismatch"):
            return
        state.count += 1
        if seq_id is not None:
            state.seq_id = seq_id
            sequence = seq_id
        else:
            sequence = state.count
        book.sequence = sequence
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        self._publish_delta(state, bids, asks, sequence, ts_event=ts_event, recv_ns=recv_ns)

    def _publish_delta(
        self,
        state: _Symbol,
        bids: list[Level],
        asks: list[Level],
        sequence: int,
        *,
        ts_event: int,
        recv_ns: int,
    ) -> None:
        """Count an applied book message and publish its levels (when any changed)."""
        stats = self.stats
        stats.book_updates += 1
        changed = len(bids) + len(asks)
        if changed:
            stats.level_updates += changed
            self._publish(
                state.book_topic,
                BookDelta(
                    VENUE,
                    state.symbol,
                    tuple(bids),
                    tuple(asks),
                    sequence,
                    sequence,
                    ts_event,
                    recv_ns,
                ),
            )

    def _load_snapshot(
        self, state: _Symbol, channel: str, item: dict[str, Any], recv_ns: int
    ) -> None:
        stats = self.stats
        try:
            seq_id = _optional_int(item, "seqId")
            checksum = _venue_checksum(item)
            ts_event = int(item["ts"]) * _MS_TO_NS
            raw_bids = item["bids"]
            raw_asks = item["asks"]
            if type(raw_bids) is not list or type(raw_asks) is not list:
                raise TypeError("bids and asks must be lists")
            if state.price is None:
                self._derive_instrument(state, raw_bids, raw_asks)
            price = state.price
            size = state.size
            assert price is not None and size is not None
            bid_texts, bid_sizes = _parse_side(raw_bids, price, size)
            ask_texts, ask_sizes = _parse_side(raw_asks, price, size)
        except _MALFORMED:
            if state.state is _VALID:
                self._invalidate(state, "malformed book snapshot", recv_ns)
            raise
        book = state.book
        # A shallow channel's message while valid is an update expressed as a whole book.
        as_delta = state.state is _VALID and channel in SNAPSHOT_CHANNELS
        bids: list[Level] = []
        asks: list[Level] = []
        if as_delta:
            old_bids = book.bids
            old_asks = book.asks
            bids = [(p, s) for p, s in bid_sizes.items() if old_bids.get(p) != s]
            bids += [(p, 0) for p in old_bids if p not in bid_sizes]
            asks = [(p, s) for p, s in ask_sizes.items() if old_asks.get(p) != s]
            asks += [(p, 0) for p in old_asks if p not in ask_sizes]
            book.apply(bids, asks)
        else:
            book.load(bid_sizes.items(), ask_sizes.items())
        state.bid_texts = bid_texts
        state.ask_texts = ask_texts
        state.bid_prices = sorted(bid_texts)
        state.ask_prices = sorted(ask_texts)
        if not self._verified(state, checksum, recv_ns, "checksum mismatch on snapshot"):
            return
        state.count += 1
        state.seq_id = seq_id
        sequence = state.count if seq_id is None else seq_id
        book.sequence = sequence
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        if as_delta:
            self._publish_delta(state, bids, asks, sequence, ts_event=ts_event, recv_ns=recv_ns)
            return
        state.channel = channel
        previous = state.state
        if previous is not _VALID:
            state.state = _VALID
            if previous is _INVALID:
                stats.resyncs += 1
            self._publish(
                state.status_topic,
                BookStatus(VENUE, state.symbol, _VALID, f"{channel} snapshot", sequence, recv_ns),
            )
        depth = self._snapshot_depth
        self._publish(
            state.snapshot_topic,
            BookSnapshot(
                VENUE,
                state.symbol,
                tuple(book.bid_levels(depth)),
                tuple(book.ask_levels(depth)),
                sequence,
                ts_event,
                recv_ns,
            ),
        )

    def _verified(self, state: _Symbol, checksum: int | None, recv_ns: int, what: str) -> bool:
        """Check the venue checksum (when sent) and crossing; invalidate the book on failure."""
        stats = self.stats
        if checksum is not None:
            stats.checksum_checks += 1
            ours = _book_checksum(state)
            if ours != checksum:
                stats.checksum_failures += 1
                self._invalidate(state, f"{what}: venue {checksum}, book {ours}", recv_ns)
                return False
        bid_prices = state.bid_prices
        ask_prices = state.ask_prices
        if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
            stats.crossed_books += 1
            self._invalidate(state, "crossed book", recv_ns)
            return False
        return True

    def connection_lost(self, reason: str, recv_ns: int) -> None:
        """Invalidate every book: updates were missed while the stream was down.

        Each book is valid again from the snapshot the venue sends on resubscribe.
        """
        for state in self._symbols.values():
            self._invalidate(state, f"connection lost: {reason}", recv_ns)

    def _invalidate(self, state: _Symbol, reason: str, recv_ns: int) -> None:
        """Clear the book and announce that it cannot be trusted until the next snapshot."""
        sequence = state.book.sequence
        state.clear_levels()
        if state.state is _INVALID:
            return
        state.state = _INVALID
        log.warning("OKX %s book invalid: %s", state.symbol, reason)
        self._publish(
            state.status_topic,
            BookStatus(VENUE, state.symbol, _INVALID, reason, sequence, recv_ns),
        )

    # -- trades and tickers --------------------------------------------------

    def _priced_symbol(self, symbol: str) -> _Symbol | None:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._new_symbol(symbol)
        if state.price is None:
            self._warn_once(
                f"precision:{symbol}",
                "OKX %s: no instrument precision yet (not in the catalog and no snapshot);"
                " dropping its trades and tickers until it is known",
                symbol,
            )
            return None
        return state

    def _on_trades(
        self, channel: str, symbol: str, action: Any, data: list[Any], recv_ns: int
    ) -> None:
        state = self._priced_symbol(symbol)
        if state is None:
            return
        price = state.price
        size = state.size
        assert price is not None and size is not None
        trades = []
        for item in data:
            trade_id = item["tradeId"]
            if type(trade_id) is not str:
                raise TypeError("tradeId must be a string")
            p = price[item["px"]]
            s = size[item["sz"]]
            if p <= 0 or s <= 0:
                raise ValueError("trade price and size must be > 0")
            trades.append(
                Trade(
                    VENUE,
                    symbol,
                    p,
                    s,
                    _SIDES[item["side"]],
                    trade_id,
                    int(item["ts"]) * _MS_TO_NS,
                    recv_ns,
                )
            )
        topic = state.trade_topic
        for trade in trades:
            self.stats.trades += 1
            self._publish(topic, trade)

    def _on_tickers(
        self, channel: str, symbol: str, action: Any, data: list[Any], recv_ns: int
    ) -> None:
        state = self._priced_symbol(symbol)
        if state is None:
            return
        price = state.price
        size = state.size
        assert price is not None and size is not None
        quotes = []
        for item in data:
            values = []
            for key, converter, minimum in (
                ("bidPx", price, 1),
                ("bidSz", size, 0),
                ("askPx", price, 1),
                ("askSz", size, 0),
            ):
                text = item[key]
                if text == "":
                    values.append(0)  # no such side
                    continue
                value = converter[text]
                if value < minimum:
                    raise ValueError(f"{key} {text!r} is out of range")
                values.append(value)
            bid_price, bid_size, ask_price, ask_size = values
            quotes.append(
                Quote(
                    VENUE,
                    symbol,
                    bid_price,
                    bid_size,
                    ask_price,
                    ask_size,
                    0,
                    int(item["ts"]) * _MS_TO_NS,
                    recv_ns,
                )
            )
        topic = state.quote_topic
        for quote in quotes:
            self.stats.quotes += 1
            self._publish(topic, quote)

    # -- events and errors ---------------------------------------------------

    def _on_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event == "error":
            self.venue_errors += 1
            log.warning("OKX error event: code=%s msg=%s", message.get("code"), message.get("msg"))
        elif event == "notice":
            log.warning("OKX notice: code=%s msg=%s", message.get("code"), message.get("msg"))
        elif event in ("subscribe", "unsubscribe", "login", "channel-conn-count"):
            log.debug("OKX %s: %s", event, message.get("arg"))
        else:
            log.info("OKX event %r ignored: %.200r", event, message)

    def _malformed(self, frame: RawFrame, exc: Exception) -> None:
        count_malformed(self.stats, log, "OKX", frame, exc)

    def _warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)
