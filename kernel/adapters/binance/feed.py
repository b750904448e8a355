"""Binance market data: combined-stream frames → verified books, quotes and trades.

One feed serves one market (spot, USD-M or COIN-M futures) and any number of
symbols. Each symbol's book follows Binance's documented local-book procedure:

* spot: buffer diffs until the REST snapshot, drop diffs with
  ``u <= lastUpdateId``, the first applied diff has
  ``U <= lastUpdateId + 1 <= u``, after it every diff has ``U == previous u + 1``;
* futures: drop ``u < lastUpdateId``, the first applied diff has
  ``U <= lastUpdateId <= u``, after it every diff has ``pu == previous u``.

A broken chain, a crossed book or a ``bookTicker`` that disagrees with the book
at the same update id marks the book INVALID: a :class:`BookStatus` is
published, the failure is counted, the book is emptied, nothing more is
published from it, and diffs are buffered until the next snapshot
resynchronises it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any, Literal

import orjson

from kernel.adapters.base import FeedStats, RawFrame
from kernel.adapters.binance.instruments import KNOWN_INSTRUMENTS, instrument_from_strings
from kernel.book import L2Book
from kernel.book.accel import DepthFrame, depth_frame, fixed_levels
from kernel.bus import Bus, topics
from kernel.metrics import StageLatency, TickToOrder
from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError
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

__all__ = ["VENUE_NAMES", "BinanceFeed", "Market"]

log = logging.getLogger(__name__)

Market = Literal["spot", "usdm", "coinm"]

VENUE_NAMES: Mapping[Market, str] = {
    "spot": "binance",
    "usdm": "binance-usdm",
    "coinm": "binance-coinm",
}

_DEPTH_STREAMS = frozenset({"depth", "depth@100ms", "depth@0ms", "depth@250ms", "depth@500ms"})
_MS = 1_000_000
# How many applied diffs keep their resulting top of book for bookTicker checks.
_ORACLE_WINDOW = 512
# How many bookTickers may wait for the diff carrying their update id.
_PENDING_TICKERS = 512
# Diffs buffered while waiting for a snapshot; older ones are superseded anyway.
_SYNC_BUFFER = 20_000

_Top = tuple[int, int, int, int]  # bid price, bid size, ask price, ask size (0 when empty)


_Handler = Callable[["_Symbol", dict[str, Any], int], None]
_Route = tuple[_Handler, "_Symbol", bool]  # handler, symbol state, is a depth stream
_Level = tuple[int, int]


class _MalformedError(ValueError):
    """A frame that parsed as JSON but does not have the expected shape."""


# What a handler raises on a frame of the wrong shape: counted as malformed.
_FRAME_ERRORS = (_MalformedError, FixedPointError, KeyError, TypeError, ValueError, IndexError)


class _Symbol:
    """Everything the feed keeps for one symbol."""

    __slots__ = (
        "book",
        "book_topic",
        "buffer",
        "ever_valid",
        "instrument",
        "last_u",
        "pending_tickers",
        "prices",
        "quote_topic",
        "sizes",
        "snapshot_id",
        "snapshot_topic",
        "state",
        "status_topic",
        "top_ids",
        "tops",
        "trade_topic",
    )

    def __init__(self, venue: str, instrument: Instrument) -> None:
        self.instrument = instrument
        self.book = L2Book()
        self.state = BookState.SYNCING
        self.last_u = 0
        self.snapshot_id: int | None = None
        self.buffer: deque[tuple[dict[str, Any], int]] = deque(maxlen=_SYNC_BUFFER)
        self.prices = FixedConverter(instrument.price_precision)
        self.sizes = FixedConverter(instrument.size_precision)
        self.tops: dict[int, _Top] = {}
        self.top_ids: deque[int] = deque()
        # bookTickers that arrived before the diff with their update id, in id order.
        self.pending_tickers: deque[tuple[int, _Top]] = deque(maxlen=_PENDING_TICKERS)
        symbol = instrument.symbol
        self.book_topic = topics.book(venue, symbol)
        self.snapshot_topic = topics.snapshot(venue, symbol)
        self.status_topic = topics.book_status(venue, symbol)
        self.quote_topic = topics.quote(venue, symbol)
        self.trade_topic = topics.trade(venue, symbol)
        self.ever_valid = False


class BinanceFeed:
    """Market data for one Binance market, from raw combined-stream frames."""

    def __init__(
        self,
        bus: Bus,
        market: Market = "spot",
        *,
        instruments: Mapping[str, Instrument] | None = None,
        verify: bool = True,
        latency: StageLatency | None = None,
        probe: TickToOrder | None = None,
    ) -> None:
        if market not in VENUE_NAMES:
            raise ValueError(
                f"unknown Binance market {market!r}; expected one of {list(VENUE_NAMES)}"
            )
        self.market = market
        self.venue = VENUE_NAMES[market]
        self.futures = market != "spot"
        self.bus = bus
        self.verify = verify
        self.stats = FeedStats()
        self.latency = latency
        self.probe = probe
        self._instruments = dict(
            KNOWN_INSTRUMENTS[self.venue] if instruments is None else instruments
        )
        self._symbols: dict[str, _Symbol] = {}
        self._routes: dict[str, _Route] = {}
        # Depth streams routed so far and their instrument's (price, size) precisions.
        self._depth_precisions: dict[str, tuple[int, int]] = {}
        # The symbol of the last depth diff per source: a bare REST snapshot in a
        # recording belongs to it.
        self._depth_symbol_by_source: dict[str, _Symbol] = {}
        self._malformed_logged = 0

    # -- Feed protocol -------------------------------------------------------

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol``, or None before its first depth frame."""
        entry = self._symbols.get(symbol)
        return None if entry is None else entry.book

    def book_state(self, symbol: str) -> BookState:
        """Return the sync state of ``symbol``'s book."""
        entry = self._symbols.get(symbol)
        return BookState.SYNCING if entry is None else entry.state

    @property
    def symbols(self) -> list[str]:
        """Return the symbols seen so far."""
        return sorted(self._symbols)

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument a symbol's prices and sizes are scaled by."""
        entry = self._symbols.get(symbol)
        return None if entry is None else entry.instrument

    def on_frame(self, frame: RawFrame) -> None:
        """Parse one frame and route it; malformed input is counted and logged."""
        self.stats.frames += 1
        if self.probe is not None:
            self.probe.frame_ns = perf_counter_ns()
        latency = self.latency
        started = latency.start() if latency is not None else 0
        if depth_frame is not None:
            diff = depth_frame(frame.payload, self._depth_precisions)
            if diff is not None and self._on_depth_frame(diff, frame, started):
                return
        try:
            message = orjson.loads(frame.payload)
        except orjson.JSONDecodeError as error:
            self._malformed(frame, f"invalid JSON: {error}")
            return
        parsed = latency.parsed(started) if started and latency is not None else 0
        if type(message) is not dict:
            self._malformed(frame, "not a JSON object")
            return
        data = message.get("data")
        try:
            if data is None:
                self._on_envelope_less(message, frame)
                return
            stream = message.get("stream")
            route = self._routes.get(stream) if type(stream) is str else None
            if route is None:
                route = self._route(stream, data)
            handler, entry, is_depth = route
            if is_depth:
                self._depth_symbol_by_source[frame.source] = entry
            handler(entry, data, frame.recv_ns)
        except _FRAME_ERRORS as error:
            self._malformed(frame, f"{type(error).__name__}: {error}")
        if parsed and latency is not None:
            latency.handled(parsed)

    def _on_depth_frame(self, diff: DepthFrame, frame: RawFrame, started: int) -> bool:
        """Apply a diff the compiled scanner read; False leaves the frame to orjson.

        Only a diff that extends a valid book's chain is taken here: syncing
        buffers the parsed dict and a gap invalidates, so both go the ordinary
        way, which does exactly what it did before this shortcut.
        """
        stream, event_time, first_id, last_id, previous_id, bids, asks = diff
        entry = self._routes[stream][1]
        if entry.state is not BookState.VALID:
            return False
        if self.futures:
            if previous_id is None or previous_id != entry.last_u:
                return False
        elif first_id != entry.last_u + 1:
            return False
        latency = self.latency
        parsed = latency.parsed(started) if started and latency is not None else 0
        self._depth_symbol_by_source[frame.source] = entry
        try:
            self._apply_levels(
                entry,
                bids,
                asks,
                first_id=first_id,
                last_id=last_id,
                event_time=event_time,
                recv_ns=frame.recv_ns,
            )
        except _FRAME_ERRORS as error:
            self._malformed(frame, f"{type(error).__name__}: {error}")
        if parsed and latency is not None:
            latency.handled(parsed)
        return True

    # -- routing -------------------------------------------------------------

    def _route(self, stream: object, data: Any) -> _Route:
        if type(stream) is not str or type(data) is not dict:
            raise _MalformedError(f"not a combined-stream frame (stream={stream!r})")
        name, _, kind = stream.partition("@")
        handler: _Handler
        if kind in _DEPTH_STREAMS:
            handler = self._on_depth
        elif kind == "bookTicker":
            handler = self._on_book_ticker
        elif kind in ("trade", "aggTrade"):
            handler = self._on_trade
        else:
            raise _MalformedError(f"unknown stream {stream!r}")
        route = (handler, self._symbol(name.upper(), data), handler == self._on_depth)
        self._routes[stream] = route
        if route[2]:
            entry = route[1]
            self._depth_precisions[stream] = (entry.prices.precision, entry.sizes.precision)
        return route

    def _symbol(self, symbol: str, data: Mapping[str, Any]) -> _Symbol:
        entry = self._symbols.get(symbol)
        if entry is None:
            instrument = self._instruments.get(symbol)
            if instrument is None:
                instrument = self._infer_instrument(symbol, data)
            entry = _Symbol(self.venue, instrument)
            self._symbols[symbol] = entry
        return entry

    def _infer_instrument(self, symbol: str, data: Mapping[str, Any]) -> Instrument:
        levels = [
            *data.get("b", ()),
            *data.get("a", ()),
            *data.get("bids", ()),
            *data.get("asks", ()),
        ]
        prices = [level[0] for level in levels]
        sizes = [level[1] for level in levels]
        for price_key, size_key in (("b", "B"), ("a", "A"), ("p", "q")):
            if type(data.get(price_key)) is str:
                prices.append(data[price_key])
                sizes.append(data[size_key])
        instrument = instrument_from_strings(self.venue, symbol, prices, sizes)
        log.warning(
            "%s %s is not in the instrument catalog; using precisions inferred from its "
            "data (price %d, size %d decimals)",
            self.venue,
            symbol,
            instrument.price_precision,
            instrument.size_precision,
        )
        return instrument

    def _on_envelope_less(self, message: dict[str, Any], frame: RawFrame) -> None:
        if "lastUpdateId" in message:
            self._on_snapshot(message, frame)
        elif "result" in message and "id" in message:
            pass  # a subscription acknowledgement
        else:
            raise _MalformedError("neither a combined-stream frame nor a depth snapshot")

    # -- depth ---------------------------------------------------------------

    def _on_snapshot(self, message: dict[str, Any], frame: RawFrame) -> None:
        source = frame.source
        if source.startswith("rest:depth:"):
            symbol = source.removeprefix("rest:depth:")
        else:
            known = self._depth_symbol_by_source.get(source)
            if known is None:
                raise _MalformedError(f"depth snapshot from {source!r} names no symbol")
            symbol = known.instrument.symbol
        entry = self._symbol(symbol, message)
        snapshot_id = message["lastUpdateId"]
        if type(snapshot_id) is not int:
            raise _MalformedError("lastUpdateId is not an integer")
        bids = fixed_levels(message["bids"], entry.prices, entry.sizes)
        asks = fixed_levels(message["asks"], entry.prices, entry.sizes)
        if entry.state is BookState.VALID:
            log.debug("%s %s: snapshot %d ignored, book is valid", self.venue, symbol, snapshot_id)
            return
        entry.book.load(bids, asks, snapshot_id)
        entry.book.ts_recv = frame.recv_ns
        entry.book.ts_event = message.get("E", 0) * _MS
        entry.snapshot_id = snapshot_id
        entry.last_u = snapshot_id
        buffered = list(entry.buffer)
        entry.buffer.clear()
        for data, recv_ns in buffered:
            self._on_depth(entry, data, recv_ns)

    def _on_depth(self, entry: _Symbol, data: dict[str, Any], recv_ns: int) -> None:
        first_id = data["U"]
        last_id = data["u"]
        if type(first_id) is not int or type(last_id) is not int:
            raise _MalformedError("U and u must be integers")
        if entry.state is not BookState.VALID:
            self._sync(entry, data, recv_ns)
            return
        if self.futures:
            if data["pu"] != entry.last_u:
                self._invalidate(
                    entry, f"gap: pu={data['pu']} but previous u={entry.last_u}", recv_ns
                )
                self.stats.gaps += 1
                entry.buffer.append((data, recv_ns))
                return
        elif first_id != entry.last_u + 1:
            self._invalidate(entry, f"gap: U={first_id} but previous u={entry.last_u}", recv_ns)
            self.stats.gaps += 1
            entry.buffer.append((data, recv_ns))
            return
        self._apply(entry, data, recv_ns)

    def _sync(self, entry: _Symbol, data: dict[str, Any], recv_ns: int) -> None:
        """Handle a diff while the book is not valid: buffer it or bridge the snapshot."""
        snapshot_id = entry.snapshot_id
        if snapshot_id is None:
            entry.buffer.append((data, recv_ns))
            return
        first_id = data["U"]
        last_id = data["u"]
        if self.futures:
            if last_id < snapshot_id:
                return
            bridges = first_id <= snapshot_id <= last_id
        else:
            if last_id <= snapshot_id:
                return
            bridges = first_id <= snapshot_id + 1 <= last_id
        if not bridges:
            # The snapshot is older than the diff stream: wait for a newer one.
            log.warning(
                "%s %s: snapshot %d does not bridge diff U=%d u=%d; waiting for a newer snapshot",
                self.venue,
                entry.instrument.symbol,
                snapshot_id,
                first_id,
                last_id,
            )
            entry.snapshot_id = None
            entry.buffer.append((data, recv_ns))
            return
        if not self._apply(entry, data, recv_ns, syncing=True):
            return
        self._set_state(
            entry, BookState.VALID, "resynced" if entry.ever_valid else "synced", recv_ns
        )
        if entry.ever_valid:
            self.stats.resyncs += 1
        entry.ever_valid = True
        if self.bus.has_subscribers(entry.snapshot_topic):
            book = entry.book
            self.bus.publish(
                entry.snapshot_topic,
                BookSnapshot(
                    self.venue,
                    entry.instrument.symbol,
                    tuple(book.bid_levels()),
                    tuple(book.ask_levels()),
                    book.sequence,
                    book.ts_event,
                    recv_ns,
                ),
            )

    def _apply(
        self, entry: _Symbol, data: dict[str, Any], recv_ns: int, syncing: bool = False
    ) -> bool:
        """Apply a diff that passed the sequence checks; return whether the book stayed valid."""
        bids = fixed_levels(data["b"], entry.prices, entry.sizes)
        asks = fixed_levels(data["a"], entry.prices, entry.sizes)
        return self._apply_levels(
            entry,
            bids,
            asks,
            first_id=data["U"],
            last_id=data["u"],
            event_time=data.get("E", 0),
            recv_ns=recv_ns,
            syncing=syncing,
        )

    def _apply_levels(
        self,
        entry: _Symbol,
        bids: list[_Level],
        asks: list[_Level],
        *,
        first_id: int,
        last_id: int,
        event_time: Any,
        recv_ns: int,
        syncing: bool = False,
    ) -> bool:
        """Apply converted levels (see :meth:`_apply`); ``event_time`` is the diff's ``E``."""
        book = entry.book
        book.apply(bids, asks)
        entry.last_u = last_id
        book.sequence = last_id
        book.ts_recv = recv_ns
        ts_event = event_time * _MS
        book.ts_event = ts_event
        stats = self.stats
        stats.book_updates += 1
        stats.level_updates += len(bids) + len(asks)

        bid_price = book.best_bid_price()
        ask_price = book.best_ask_price()
        if bid_price is not None and ask_price is not None and bid_price >= ask_price:
            stats.crossed_books += 1
            self._invalidate(entry, f"crossed: bid {bid_price} >= ask {ask_price}", recv_ns)
            return False
        if self.verify:
            top = (
                bid_price or 0,
                book.bids[bid_price] if bid_price is not None else 0,
                ask_price or 0,
                book.asks[ask_price] if ask_price is not None else 0,
            )
            tops = entry.tops
            tops[last_id] = top
            top_ids = entry.top_ids
            top_ids.append(last_id)
            if len(top_ids) > _ORACLE_WINDOW:
                tops.pop(top_ids.popleft(), None)
            pending = entry.pending_tickers
            if pending:
                while pending and pending[0][0] < last_id:
                    pending.popleft()  # its update id fell inside an earlier diff
                if pending and pending[0][0] == last_id:
                    ticker = pending.popleft()[1]
                    if not self._check_oracle(entry, last_id, ticker, top, recv_ns):
                        return False

        if not syncing:
            handlers = self.bus.handlers_for(entry.book_topic)
            if handlers:
                self.bus.publish(
                    entry.book_topic,
                    BookDelta(
                        self.venue,
                        entry.instrument.symbol,
                        tuple(bids),
                        tuple(asks),
                        first_id,
                        last_id,
                        ts_event,
                        recv_ns,
                    ),
                )
        return True

    # -- top of book and trades ---------------------------------------------

    def _on_book_ticker(self, entry: _Symbol, data: dict[str, Any], recv_ns: int) -> None:
        prices = entry.prices
        sizes = entry.sizes
        bid_price = prices[data["b"]]
        bid_size = sizes[data["B"]]
        ask_price = prices[data["a"]]
        ask_size = sizes[data["A"]]
        update_id = data["u"]
        self.stats.quotes += 1
        ts_event = data.get("E", 0) * _MS
        if self.bus.handlers_for(entry.quote_topic):
            self.bus.publish(
                entry.quote_topic,
                Quote(
                    self.venue,
                    entry.instrument.symbol,
                    bid_price,
                    bid_size,
                    ask_price,
                    ask_size,
                    update_id,
                    ts_event,
                    recv_ns,
                ),
            )
        if not self.verify or entry.state is not BookState.VALID:
            return
        ticker = (bid_price, bid_size, ask_price, ask_size)
        top = entry.tops.get(update_id)
        if top is not None:
            self._check_oracle(entry, update_id, ticker, top, recv_ns)
        elif update_id > entry.last_u:
            entry.pending_tickers.append((update_id, ticker))

    def _check_oracle(
        self, entry: _Symbol, update_id: int, ticker: _Top, top: _Top, recv_ns: int
    ) -> bool:
        """Compare a bookTicker with the book at the same update id; invalidate on mismatch."""
        self.stats.oracle_checks += 1
        if ticker == top:
            return True
        self.stats.oracle_mismatches += 1
        log.error(
            "%s %s: bookTicker u=%d says %s but the book says %s",
            self.venue,
            entry.instrument.symbol,
            update_id,
            ticker,
            top,
        )
        self._invalidate(entry, f"bookTicker mismatch at u={update_id}", recv_ns)
        return False

    def _on_trade(self, entry: _Symbol, data: dict[str, Any], recv_ns: int) -> None:
        price = entry.prices[data["p"]]
        size = entry.sizes[data["q"]]
        buyer_is_maker = data["m"]
        if type(buyer_is_maker) is not bool:
            raise _MalformedError("trade field m is not a boolean")
        trade_id = data.get("t", data.get("a"))
        self.stats.trades += 1
        if self.bus.handlers_for(entry.trade_topic):
            self.bus.publish(
                entry.trade_topic,
                Trade(
                    self.venue,
                    entry.instrument.symbol,
                    price,
                    size,
                    AggressorSide.SELL if buyer_is_maker else AggressorSide.BUY,
                    str(trade_id),
                    data.get("T", 0) * _MS,
                    recv_ns,
                ),
            )

    # -- state ---------------------------------------------------------------

    def connection_lost(self, reason: str, recv_ns: int) -> None:
        """Invalidate every book: diffs were missed while the stream was down.

        Each book resyncs from the buffered diffs of the new connection and a
        fresh REST snapshot, as after a gap.
        """
        for entry in self._symbols.values():
            if entry.state is not BookState.INVALID:
                self._invalidate(entry, f"connection lost: {reason}", recv_ns)
            entry.buffer.clear()  # diffs from the old connection can never bridge

    def _invalidate(self, entry: _Symbol, reason: str, recv_ns: int) -> None:
        log.warning(
            "%s %s: book invalid (%s); resyncing from the next snapshot",
            self.venue,
            entry.instrument.symbol,
            reason,
        )
        entry.snapshot_id = None
        entry.book.clear()  # nobody may read levels that are known to be wrong
        entry.tops.clear()
        entry.top_ids.clear()
        entry.pending_tickers.clear()
        self._set_state(entry, BookState.INVALID, reason, recv_ns)

    def _set_state(self, entry: _Symbol, state: BookState, reason: str, recv_ns: int) -> None:
        entry.state = state
        self.bus.publish(
            entry.status_topic,
            BookStatus(self.venue, entry.instrument.symbol, state, reason, entry.last_u, recv_ns),
        )

    def _malformed(self, frame: RawFrame, reason: str) -> None:
        self.stats.malformed_frames += 1
        # Log the first few in full, then every 1000th, so a broken stream cannot flood the log.
        self._malformed_logged += 1
        if self._malformed_logged <= 10 or self._malformed_logged % 1000 == 0:
            log.warning(
                "%s: malformed frame #%d from %s at %d: %s; payload starts %r",
                self.venue,
                self.stats.malformed_frames,
                frame.source or "?",
                frame.recv_ns,
                reason,
                frame.payload[:120],
            )
