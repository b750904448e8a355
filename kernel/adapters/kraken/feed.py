"""Kraken spot market data, WebSocket v1 and v2: raw frames to verified books, trades and quotes.

Book rules (Kraken's book-checksum guides for v1 and v2, see :mod:`.checksum`
and ``docs/venues.md``):

* A snapshot replaces the book. Updates set a level's size; a zero size
  removes it; several updates of one price in a message apply in order (the
  last wins). A v1 level flagged ``"r"`` is a republish — a level re-sent
  because one inside the subscribed depth went away — and applies like any
  other update.
* After every message the book is cut to the subscribed depth: the venue sends
  no delete for a level pushed out of range. The depth comes from the v1
  channel name (``book-25``) or the v2 subscribe acknowledgement
  (``result.depth``); without one, the feed's ``depth`` (Kraken's default, 10),
  raised to a snapshot's level count when it holds more.
* The CRC32 checksum over the best 10 levels a side is verified after every
  message that carries one: v1 updates (``"c"``; v1 snapshots carry none), v2
  snapshots and updates (``checksum``). The level strings are kept as received
  for it; v2 frames are parsed so that numbers keep their literal text.

A checksum mismatch, a crossed book or an update that cannot be parsed makes the
book INVALID: it is cleared, a :class:`BookStatus` says why, a resync is
requested (:attr:`KrakenFeed.resync_requests`: the live transport resubscribes
to get a snapshot) and nothing is published for it until the next snapshot.

v1 and v2 name pairs differently (``XBT/USD``, ``BTC/USD``), so the books of
both versions never share a symbol. ``BookDelta``/``BookSnapshot`` sequences
count the messages applied to a book since the feed started.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any

import orjson

from kernel.adapters.base import FeedStats, RawFrame, count_malformed
from kernel.adapters.kraken.checksum import CHECKSUM_DEPTH, checksum_of_tokens, level_token
from kernel.adapters.wire import ResyncRequest, ResyncRequests, rfc3339_to_ns
from kernel.book import L2Book
from kernel.bus import topics
from kernel.bus.bus import Bus
from kernel.metrics import StageLatency, TickToOrder
from kernel.recording.readers import decimal_seconds_to_ns
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

__all__ = ["DEFAULT_DEPTH", "VENUE", "KrakenFeed"]

log = logging.getLogger(__name__)

VENUE = "kraken"
DEFAULT_DEPTH = 10
"""Kraken's default book subscription depth (v1 and v2)."""

_VALID = BookState.VALID
_INVALID = BookState.INVALID
_SYNCING = BookState.SYNCING
_V1_SIDES = {"b": AggressorSide.BUY, "s": AggressorSide.SELL}
_V2_SIDES = {"buy": AggressorSide.BUY, "sell": AggressorSide.SELL}
# Exceptions that mean "the input is not what Kraken sends" rather than a bug here.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)

# A parsed level: fixed-point price, fixed-point size, checksum token (price+volume digits).
_Parsed = tuple[int, int, str]


class _Symbol:
    """Everything the feed keeps for one pair."""

    __slots__ = (
        "ask_prices",
        "ask_tokens",
        "bid_prices",
        "bid_tokens",
        "book",
        "book_topic",
        "connection",
        "count",
        "depth",
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
        self.instrument: Instrument | None = None
        self.price: FixedConverter | None = None
        self.size: FixedConverter | None = None
        self.book = L2Book()
        self.seen_book = False
        self.state = _SYNCING
        self.depth = DEFAULT_DEPTH
        self.connection = ""
        # Checksum token of each live level, and the sorted (ascending) prices.
        self.bid_tokens: dict[int, str] = {}
        self.ask_tokens: dict[int, str] = {}
        self.bid_prices: list[int] = []
        self.ask_prices: list[int] = []
        self.count = 0
        self.book_topic = topics.book(VENUE, symbol)
        self.snapshot_topic = topics.snapshot(VENUE, symbol)
        self.status_topic = topics.book_status(VENUE, symbol)
        self.quote_topic = topics.quote(VENUE, symbol)
        self.trade_topic = topics.trade(VENUE, symbol)

    def clear_levels(self) -> None:
        self.book.clear()
        self.bid_tokens.clear()
        self.ask_tokens.clear()
        self.bid_prices.clear()
        self.ask_prices.clear()

    def checksum(self) -> int:
        """Return the checksum of the book as it stands (best 10 asks, then best 10 bids)."""
        ask_tokens = self.ask_tokens
        bid_tokens = self.bid_tokens
        return checksum_of_tokens(
            [ask_tokens[p] for p in self.ask_prices[:CHECKSUM_DEPTH]],
            [bid_tokens[p] for p in self.bid_prices[: -CHECKSUM_DEPTH - 1 : -1]],
        )


def _number_text(value: Any) -> str:
    """Return a price or size as its received text (v1 strings, v2 number literals)."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"{value!r} is not a decimal number")


def _parse_levels(raw: Any, price: FixedConverter, size: FixedConverter, v2: bool) -> list[_Parsed]:
    """Parse one side's levels, in order, without touching any state."""
    if type(raw) is not list:
        raise TypeError("levels must be a list")
    out: list[_Parsed] = []
    for level in raw:
        if v2:
            px = _number_text(level["price"])
            sz = _number_text(level["qty"])
        else:
            if type(level) is not list:
                raise TypeError(f"level {level!r} is not a list")
            px = level[0]
            sz = level[1]
            if type(px) is not str or type(sz) is not str:
                raise TypeError(f"level {level!r} must hold strings")
        p = price[px]
        s = size[sz]
        if p <= 0 or s < 0:
            raise ValueError(f"invalid level {level!r}: price must be > 0 and size >= 0")
        out.append((p, s, level_token(px, sz)))
    return out


def _apply_levels(levels: list[_Parsed], tokens: dict[int, str], prices: list[int]) -> list[Level]:
    out: list[Level] = []
    for p, s, token in levels:
        if s:
            if p not in tokens:
                insort(prices, p)
            tokens[p] = token
        elif p in tokens:
            del tokens[p]
            del prices[bisect_left(prices, p)]
        out.append((p, s))
    return out


def _latest_v1_time(*sides: list[Any]) -> int:
    """Return the latest level timestamp of a v1 book message, in ns (0 when none)."""
    latest = ""
    for levels in sides:
        for level in levels:
            if len(level) > 2 and type(level[2]) is str:
                stamp = level[2]
                if len(stamp) > len(latest) or (len(stamp) == len(latest) and stamp > latest):
                    latest = stamp
    return decimal_seconds_to_ns(latest) if latest else 0


class KrakenFeed:
    """The Kraken spot public websocket feed, v1 and v2 (see the module docstring for the rules).

    ``instruments`` maps a pair (``XBT/USD`` for v1, ``BTC/USD`` for v2) to its
    :class:`Instrument`; a pair it does not hold takes its precisions from the
    first book snapshot (the most decimals seen), and its trades and quotes are
    dropped until then. ``depth`` is the book depth assumed when a v2 stream
    carries no subscribe acknowledgement. ``on_resync`` is called with each
    :class:`ResyncRequest` as it is made.
    """

    def __init__(
        self,
        bus: Bus,
        instruments: Mapping[str, Instrument] | None = None,
        *,
        depth: int = DEFAULT_DEPTH,
        latency: StageLatency | None = None,
        probe: TickToOrder | None = None,
        on_resync: Callable[[ResyncRequest], None] | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.venue = VENUE
        self.latency = latency
        self.probe = probe
        self.stats = FeedStats()
        self.venue_errors = 0
        """Error answers from the venue (rejected subscriptions, ...)."""
        self.heartbeats = 0
        self.resync_requests = ResyncRequests(on_resync)
        self._publish = bus.publish
        self._catalog: dict[str, Instrument] = dict(instruments or {})
        self._default_depth = depth
        self._acked_depth: dict[str, int] = {}
        self._symbols: dict[str, _Symbol] = {}
        self._converters: dict[int, FixedConverter] = {}
        self._warned: set[str] = set()
        self._v1_channels: dict[str, Callable[[list[Any], str, str, int], None]] = {
            "trade": self._on_v1_trades,
            "spread": self._on_v1_spread,
        }
        self._v2_channels: dict[str, Callable[[dict[str, Any], RawFrame], None]] = {
            "book": self._on_v2_book,
            "trade": self._on_v2_trades,
            "ticker": self._on_v2_ticker,
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
            payload = frame.payload.lstrip()
            if payload[:1] == b"[":
                message: Any = orjson.loads(payload)
                if started and latency is not None:
                    started = latency.parsed(started)
                self._on_v1(message, frame)
            else:
                # Number literals stay text: v2 checksums are over the digits as sent.
                message = json.loads(payload, parse_float=str)
                if started and latency is not None:
                    started = latency.parsed(started)
                if type(message) is not dict:
                    raise TypeError("frame is neither a JSON array nor an object")
                self._on_object(message, frame)
            if started and latency is not None:
                latency.handled(started)
        except (*_MALFORMED, json.JSONDecodeError) as exc:
            self._malformed(frame, exc)
        except Exception:
            # Never raise into the transport; this is a bug, so keep the traceback.
            self.stats.malformed_frames += 1
            log.exception("Kraken frame from %s failed: %.200r", frame.source, frame.payload)

    @property
    def symbols(self) -> list[str]:
        """Return the pairs whose book messages the feed has seen."""
        return sorted(symbol for symbol, state in self._symbols.items() if state.seen_book)

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol`` (None when no book message for it was seen)."""
        state = self._symbols.get(symbol)
        return state.book if state is not None and state.seen_book else None

    def book_state(self, symbol: str) -> BookState:
        """Return whether ``symbol``'s book is syncing, valid or invalid."""
        state = self._symbols.get(symbol)
        return _SYNCING if state is None else state.state

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument whose precisions scale ``symbol``'s prices and sizes."""
        state = self._symbols.get(symbol)
        if state is not None and state.instrument is not None:
            return state.instrument
        return self._catalog.get(symbol)

    def book_depth(self, symbol: str) -> int | None:
        """Return the depth ``symbol``'s book is cut to (None before its first book message)."""
        state = self._symbols.get(symbol)
        return state.depth if state is not None and state.seen_book else None

    # -- routing -------------------------------------------------------------

    def _on_v1(self, message: Any, frame: RawFrame) -> None:
        if type(message) is not list or len(message) < 4:
            raise ValueError("a v1 channel message is [channelID, data..., channelName, pair]")
        channel = message[-2]
        pair = message[-1]
        if type(channel) is not str or type(pair) is not str:
            raise TypeError("v1 channel name and pair must be strings")
        if channel.startswith("book-"):
            self._on_v1_book(message[1:-2], int(channel[5:]), pair, frame)
            return
        handler = self._v1_channels.get(channel)
        if handler is None:
            if channel.startswith(("ohlc-", "ticker")):
                return  # subscribed but not used by the kernel
            raise ValueError(f"unknown v1 channel {channel!r}")
        handler(message[1:-2], pair, frame.source, frame.recv_ns)

    def _on_object(self, message: dict[str, Any], frame: RawFrame) -> None:
        channel = message.get("channel")
        if channel is not None:
            if channel in ("heartbeat", "status"):
                self.heartbeats += channel == "heartbeat"
                return
            handler = self._v2_channels.get(channel)
            if handler is None:
                raise ValueError(f"unknown v2 channel {channel!r}")
            handler(message, frame)
            return
        if "method" in message:
            self._on_v2_method(message)
            return
        event = message.get("event")
        if event is None:
            raise ValueError("object frame with neither channel, method nor event")
        if event == "heartbeat":
            self.heartbeats += 1
        elif event == "subscriptionStatus" and message.get("status") == "error":
            self.venue_errors += 1
            log.warning("Kraken subscription error: %s", message.get("errorMessage"))
        elif event not in ("subscriptionStatus", "systemStatus", "pong"):
            log.info("Kraken event %r ignored", event)

    def _on_v2_method(self, message: dict[str, Any]) -> None:
        if message.get("success") is False:
            self.venue_errors += 1
            log.warning("Kraken %s failed: %s", message.get("method"), message.get("error"))
            return
        result = message.get("result")
        if (
            message.get("method") == "subscribe"
            and type(result) is dict
            and result.get("channel") == "book"
            and type(result.get("depth")) is int
        ):
            symbol = result["symbol"]
            self._acked_depth[symbol] = result["depth"]
            state = self._symbols.get(symbol)
            if state is not None:
                state.depth = result["depth"]

    # -- books ---------------------------------------------------------------

    def _symbol(self, symbol: str) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(symbol)
            instrument = self._catalog.get(symbol)
            if instrument is not None:
                self._set_instrument(state, instrument)
        return state

    def _converter(self, precision: int) -> FixedConverter:
        converter = self._converters.get(precision)
        if converter is None:
            converter = self._converters[precision] = FixedConverter(precision)
        return converter

    def _set_instrument(self, state: _Symbol, instrument: Instrument) -> None:
        state.instrument = instrument
        state.price = self._converter(instrument.price_precision)
        state.size = self._converter(instrument.size_precision)

    def _derive_instrument(self, state: _Symbol, sides: list[Any], v2: bool) -> None:
        prices: list[str] = []
        sizes: list[str] = []
        for levels in sides:
            for level in levels:
                if v2:
                    prices.append(_number_text(level["price"]))
                    sizes.append(_number_text(level["qty"]))
                else:
                    prices.append(level[0])
                    sizes.append(level[1])
        instrument = Instrument(
            VENUE,
            state.symbol,
            max(map(decimal_places, prices), default=0),
            max(map(decimal_places, sizes), default=0),
        )
        self._warn_once(
            f"derived:{state.symbol}",
            "Kraken %s is not in the instrument catalog; precisions from its snapshot: "
            "price %d, size %d decimals",
            state.symbol,
            instrument.price_precision,
            instrument.size_precision,
        )
        self._set_instrument(state, instrument)

    def _on_v1_book(self, parts: list[Any], depth: int, pair: str, frame: RawFrame) -> None:
        state = self._symbol(pair)
        state.seen_book = True
        asks: list[Any] = []
        bids: list[Any] = []
        checksum: int | None = None
        snapshot = False
        for part in parts:
            if type(part) is not dict:
                raise TypeError("v1 book data must be objects")
            if "as" in part or "bs" in part:
                snapshot = True
                asks += part.get("as", ())
                bids += part.get("bs", ())
                continue
            asks += part.get("a", ())
            bids += part.get("b", ())
            if "c" in part:
                text = part["c"]
                if type(text) is not str or not text.isdigit():
                    raise ValueError(f"checksum {text!r} is not an unsigned integer string")
                checksum = int(text)
        ts_event = _latest_v1_time(asks, bids)
        if snapshot:
            self._load(
                state, asks, bids, depth=depth, checksum=None, v2=False, ts=ts_event, frame=frame
            )
        else:
            state.depth = depth
            self._update(state, asks, bids, checksum=checksum, v2=False, ts=ts_event, frame=frame)

    def _on_v2_book(self, message: dict[str, Any], frame: RawFrame) -> None:
        kind = message["type"]
        if kind not in ("snapshot", "update"):
            raise ValueError(f"unknown book message type {kind!r}")
        for item in message["data"]:
            symbol = item["symbol"]
            if type(symbol) is not str:
                raise TypeError("symbol must be a string")
            checksum = item.get("checksum")
            if checksum is not None and (type(checksum) is not int or checksum < 0):
                raise TypeError(f"checksum {checksum!r} is not an unsigned integer")
            stamp = item.get("timestamp")
            ts_event = rfc3339_to_ns(stamp) if stamp is not None else 0
            state = self._symbol(symbol)
            state.seen_book = True
            if kind == "snapshot":
                depth = self._acked_depth.get(symbol)
                if depth is None:
                    shown = max(len(item["bids"]), len(item["asks"]))
                    depth = max(self._default_depth, shown)
                self._load(
                    state,
                    item["asks"],
                    item["bids"],
                    depth=depth,
                    checksum=checksum,
                    v2=True,
                    ts=ts_event,
                    frame=frame,
                )
            else:
                self._update(
                    state,
                    item["asks"],
                    item["bids"],
                    checksum=checksum,
                    v2=True,
                    ts=ts_event,
                    frame=frame,
                )

    def _load(
        self,
        state: _Symbol,
        raw_asks: Any,
        raw_bids: Any,
        *,
        depth: int,
        checksum: int | None,
        v2: bool,
        ts: int,
        frame: RawFrame,
    ) -> None:
        """Replace the book with a snapshot, verify it, and publish it."""
        ts_event = ts
        recv_ns = frame.recv_ns
        try:
            if state.price is None:
                self._derive_instrument(state, [raw_asks, raw_bids], v2)
            price = state.price
            size = state.size
            assert price is not None and size is not None
            asks = _parse_levels(raw_asks, price, size, v2)
            bids = _parse_levels(raw_bids, price, size, v2)
        except _MALFORMED:
            if state.state is _VALID:
                self._invalidate(state, "malformed book snapshot", frame)
            raise
        state.clear_levels()
        state.depth = depth
        _apply_levels(asks, state.ask_tokens, state.ask_prices)
        _apply_levels(bids, state.bid_tokens, state.bid_prices)
        self._truncate(state)
        bid_sizes = {p: s for p, s, _ in bids}
        ask_sizes = {p: s for p, s, _ in asks}
        book = state.book
        book.load(
            [(p, bid_sizes[p]) for p in state.bid_prices],
            [(p, ask_sizes[p]) for p in state.ask_prices],
        )
        state.connection = frame.source
        if not self._verified(state, checksum, frame, "checksum mismatch on snapshot"):
            return
        state.count += 1
        book.sequence = state.count
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        self.stats.book_updates += 1
        previous = state.state
        if previous is not _VALID:
            state.state = _VALID
            if previous is _INVALID:
                self.stats.resyncs += 1
            self._publish(
                state.status_topic,
                BookStatus(VENUE, state.symbol, _VALID, "snapshot", state.count, recv_ns),
            )
        self._publish(
            state.snapshot_topic,
            BookSnapshot(
                VENUE,
                state.symbol,
                tuple(book.bid_levels()),
                tuple(book.ask_levels()),
                state.count,
                ts_event,
                recv_ns,
            ),
        )

    def _update(
        self,
        state: _Symbol,
        raw_asks: Any,
        raw_bids: Any,
        *,
        checksum: int | None,
        v2: bool,
        ts: int,
        frame: RawFrame,
    ) -> None:
        """Apply an update in order, cut to depth, verify, and publish the changes."""
        ts_event = ts
        if state.state is not _VALID:
            return  # waiting for a snapshot
        price = state.price
        size = state.size
        assert price is not None and size is not None
        try:
            asks = _parse_levels(raw_asks, price, size, v2)
            bids = _parse_levels(raw_bids, price, size, v2)
        except _MALFORMED:
            self._invalidate(state, "malformed book update", frame)
            raise
        ask_changes = _apply_levels(asks, state.ask_tokens, state.ask_prices)
        bid_changes = _apply_levels(bids, state.bid_tokens, state.bid_prices)
        cut_bids, cut_asks = self._truncate(state)
        bid_changes += cut_bids
        ask_changes += cut_asks
        book = state.book
        book.apply(bid_changes, ask_changes)
        if not self._verified(state, checksum, frame, "checksum mismatch"):
            return
        state.count += 1
        book.sequence = state.count
        book.ts_event = ts_event
        book.ts_recv = frame.recv_ns
        stats = self.stats
        stats.book_updates += 1
        changed = len(bid_changes) + len(ask_changes)
        if changed:
            stats.level_updates += changed
            self._publish(
                state.book_topic,
                BookDelta(
                    VENUE,
                    state.symbol,
                    tuple(bid_changes),
                    tuple(ask_changes),
                    state.count,
                    state.count,
                    ts_event,
                    frame.recv_ns,
                ),
            )

    @staticmethod
    def _truncate(state: _Symbol) -> tuple[list[Level], list[Level]]:
        """Cut both sides to the subscribed depth; return the removed levels as deletes."""
        depth = state.depth
        cut_bids: list[Level] = []
        cut_asks: list[Level] = []
        bid_prices = state.bid_prices
        if len(bid_prices) > depth:
            excess = len(bid_prices) - depth
            for p in bid_prices[:excess]:  # the worst bids are the lowest
                del state.bid_tokens[p]
                cut_bids.append((p, 0))
            del bid_prices[:excess]
        ask_prices = state.ask_prices
        if len(ask_prices) > depth:
            for p in ask_prices[depth:]:  # the worst asks are the highest
                del state.ask_tokens[p]
                cut_asks.append((p, 0))
            del ask_prices[depth:]
        return cut_bids, cut_asks

    def _verified(self, state: _Symbol, checksum: int | None, frame: RawFrame, what: str) -> bool:
        """Check the venue checksum (when sent) and crossing; invalidate the book on failure."""
        stats = self.stats
        if checksum is not None:
            stats.checksum_checks += 1
            ours = state.checksum()
            if ours != checksum:
                stats.checksum_failures += 1
                self._invalidate(state, f"{what}: venue {checksum}, book {ours}", frame)
                return False
        bid_prices = state.bid_prices
        ask_prices = state.ask_prices
        if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
            stats.crossed_books += 1
            self._invalidate(state, "crossed book", frame)
            return False
        return True

    def connection_lost(self, reason: str, recv_ns: int, connection: str | None = None) -> None:
        """Invalidate the books of ``connection`` (every book when None): updates were missed.

        Each resyncs from the snapshot its new subscription brings.
        """
        for state in self._symbols.values():
            if state.seen_book and connection in (None, state.connection):
                frame = RawFrame(recv_ns, b"", state.connection)
                self._invalidate(state, f"connection lost: {reason}", frame)

    def _invalidate(self, state: _Symbol, reason: str, frame: RawFrame) -> None:
        """Clear the book, announce it cannot be trusted, and ask for a fresh snapshot."""
        sequence = state.book.sequence
        state.clear_levels()
        if state.state is _INVALID:
            return
        state.state = _INVALID
        log.warning("Kraken %s book invalid: %s", state.symbol, reason)
        self._publish(
            state.status_topic,
            BookStatus(VENUE, state.symbol, _INVALID, reason, sequence, frame.recv_ns),
        )
        self.resync_requests.request(
            VENUE, frame.source or state.connection, f"book:{state.symbol}", reason
        )

    # -- trades and quotes ---------------------------------------------------

    def _priced(self, symbol: str) -> _Symbol | None:
        state = self._symbol(symbol)
        if state.price is None:
            self._warn_once(
                f"precision:{symbol}",
                "Kraken %s: no precision yet (not in the catalog and no snapshot);"
                " dropping its trades and quotes until it is known",
                symbol,
            )
            return None
        return state

    def _publish_trade(
        self,
        state: _Symbol,
        px: Any,
        sz: Any,
        *,
        side: AggressorSide,
        trade_id: str,
        ts_event: int,
        recv_ns: int,
    ) -> None:
        price = state.price
        size = state.size
        assert price is not None and size is not None
        p = price[_number_text(px)]
        s = size[_number_text(sz)]
        if p <= 0 or s <= 0:
            raise ValueError("trade price and size must be > 0")
        self.stats.trades += 1
        self._publish(
            state.trade_topic, Trade(VENUE, state.symbol, p, s, side, trade_id, ts_event, recv_ns)
        )

    def _on_v1_trades(self, parts: list[Any], pair: str, connection: str, recv_ns: int) -> None:
        state = self._priced(pair)
        if state is None:
            return
        for trade in parts[0]:
            stamp = trade[2]
            trade_id = str(trade[6]) if len(trade) > 6 else stamp
            self._publish_trade(
                state,
                trade[0],
                trade[1],
                side=_V1_SIDES[trade[3]],
                trade_id=trade_id,
                ts_event=decimal_seconds_to_ns(stamp),
                recv_ns=recv_ns,
            )

    def _on_v2_trades(self, message: dict[str, Any], frame: RawFrame) -> None:
        for trade in message["data"]:
            state = self._priced(trade["symbol"])
            if state is None:
                continue
            self._publish_trade(
                state,
                trade["price"],
                trade["qty"],
                side=_V2_SIDES[trade["side"]],
                trade_id=str(trade["trade_id"]),
                ts_event=rfc3339_to_ns(trade["timestamp"]),
                recv_ns=frame.recv_ns,
            )

    def _publish_quote(
        self, state: _Symbol, top: tuple[Any, Any, Any, Any], ts: int, recv: int
    ) -> None:
        """Publish a top of book given as received: bid, bid size, ask, ask size."""
        price = state.price
        size = state.size
        assert price is not None and size is not None
        bid, bid_size, ask, ask_size = top
        quote = Quote(
            VENUE,
            state.symbol,
            price[_number_text(bid)],
            size[_number_text(bid_size)],
            price[_number_text(ask)],
            size[_number_text(ask_size)],
            0,
            ts,
            recv,
        )
        if quote.bid_price <= 0 or quote.ask_price <= 0 or quote.bid_size < 0 or quote.ask_size < 0:
            raise ValueError("quote prices must be > 0 and sizes >= 0")
        self.stats.quotes += 1
        self._publish(state.quote_topic, quote)

    def _on_v1_spread(self, parts: list[Any], pair: str, connection: str, recv_ns: int) -> None:
        state = self._priced(pair)
        if state is None:
            return
        bid, ask, stamp, bid_size, ask_size = parts[0][:5]
        ts = decimal_seconds_to_ns(stamp)
        self._publish_quote(state, (bid, bid_size, ask, ask_size), ts, recv_ns)

    def _on_v2_ticker(self, message: dict[str, Any], frame: RawFrame) -> None:
        for item in message["data"]:
            state = self._priced(item["symbol"])
            if state is None:
                continue
            stamp = item.get("timestamp")
            ts = rfc3339_to_ns(stamp) if stamp is not None else 0
            self._publish_quote(
                state,
                (item["bid"], item["bid_qty"], item["ask"], item["ask_qty"]),
                ts,
                frame.recv_ns,
            )

    # -- errors --------------------------------------------------------------

    def _malformed(self, frame: RawFrame, exc: Exception) -> None:
        count_malformed(self.stats, log, "Kraken", frame, exc)

    def _warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)
