"""Market data from any exchange ccxt supports, validated and audited by the kernel.

ccxt keeps each order book itself (``watch_order_book``: websocket diffs on a
REST snapshot, with its own sequence checks) and hands back the whole book on
every update. The kernel does not take that book on trust:

- every price and size is converted to fixed-point at the market's precision,
  exactly: strings as they are, floats through their shortest round-trip text
  (``repr``), which is the venue's decimal text for any value of up to 15
  significant digits; a value off the precision grid is refused;
- a crossed book, a book that stops updating for ``stale_after_s`` and a nonce
  that goes backwards invalidate it (ccxt may apply several messages between
  two reads, so the kernel can only ask the nonce to move forward; a break
  inside the chain is for ccxt to find, and its error invalidates the book too);
- every ``audit_interval_s`` the book is compared with a REST
  ``fetch_order_book`` snapshot (:func:`audit_mismatches` states the rule); a
  disagreement is checked once more with a new snapshot, and a second one
  invalidates the book.

An invalid book publishes nothing; the adapter resyncs it by watching it
afresh (``un_watch_order_book`` where ccxt has it, else by closing ccxt's
connections), and the first book of the new watch that passes the checks
makes it valid again. Events go to the bus as the native feeds publish them:
:class:`BookSnapshot` on (re)sync, :class:`BookDelta` with the changed levels,
:class:`Quote` when the top of book changes, :class:`Trade` per trade and
:class:`BookStatus` on every state change, under the venue's own symbol
(``BTCUSDT``, ``BTC-USDT``), so consumers cannot tell which path produced them.
The kernel's book mirrors the best ``depth`` levels of ccxt's book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt.pro

from kernel.adapters.base import FeedStats
from kernel.asyncutil import wait_set
from kernel.book import L2Book
from kernel.bus import Bus, topics
from tradekernel_sdk.fixedpoint import FixedPointError, decimal_places, to_fixed
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

__all__ = [
    "CcxtCounters",
    "CcxtMarketData",
    "audit_mismatches",
    "create_exchange",
    "fixed_from_number",
    "instrument_from_market",
]

log = logging.getLogger(__name__)

# ccxt's precision modes (ccxt.base.decimal_to_precision).
_DECIMAL_PLACES = 2
_SIGNIFICANT_DIGITS = 3
_TICK_SIZE = 4
_MS = 1_000_000

Side = dict[int, int]  # price -> size, fixed-point


class CcxtCounters:
    """What the adapter saw beyond the counters every feed keeps."""

    __slots__ = (
        "audit_rechecks",
        "audits_skipped",
        "nonce_regressions",
        "resubscribes",
        "stale_books",
        "watch_errors",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """Return every counter by name."""
        return {name: getattr(self, name) for name in self.__slots__}

    audit_rechecks: int
    audits_skipped: int
    nonce_regressions: int
    resubscribes: int
    stale_books: int
    watch_errors: int


def create_exchange(exchange_id: str, config: Mapping[str, Any] | None = None) -> Any:
    """Return ccxt's async (``ccxt.pro``) client of ``exchange_id``."""
    factory = getattr(ccxt.pro, exchange_id, None)
    if factory is None:
        raise ValueError(f"ccxt has no websocket client for {exchange_id!r}")
    return factory(dict(config or {}))


def _decimal_text(value: object) -> str:
    """Return a number ccxt produced as plain decimal text, without going through binary."""
    if type(value) is str:
        text = value
    elif type(value) is float or type(value) is int:
        text = repr(value)
    else:
        raise FixedPointError(f"expected a number, got {type(value).__name__} {value!r}")
    if "e" in text or "E" in text:
        try:
            text = format(Decimal(text), "f")
        except InvalidOperation:
            raise FixedPointError(f"not a number: {value!r}") from None
    return text


def fixed_from_number(value: object, precision: int) -> int:
    """Convert a ccxt price or amount (string or float) to ``10**-precision`` units, exactly."""
    return to_fixed(_decimal_text(value), precision)


def _digits(value: object, mode: int) -> int:
    """Return the decimals of a ccxt precision value in ``mode``."""
    if mode == _DECIMAL_PLACES:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int or value < 0:
            raise ValueError(f"decimal places must be a whole number, got {value!r}")
        return value
    if mode == _TICK_SIZE:
        text = _decimal_text(value)
        if "." in text:
            text = text.rstrip("0")
        return decimal_places(text) if "." in text else 0
    raise ValueError(
        "markets in significant-digits precision have no fixed decimals; pass instruments"
    )


def instrument_from_market(venue: str, market: Mapping[str, Any], mode: int) -> Instrument:
    """Build the kernel instrument of a ccxt market from its price and amount precision."""
    precision = market.get("precision") or {}
    price_digits = _digits(precision.get("price"), mode)
    size_digits = _digits(precision.get("amount"), mode)
    tick = lot = 1
    if mode == _TICK_SIZE:
        tick = fixed_from_number(precision["price"], price_digits)
        lot = fixed_from_number(precision["amount"], size_digits)
    return Instrument(
        venue,
        str(market["id"]),
        price_digits,
        size_digits,
        tick,
        lot,
        str(market.get("base") or ""),
        str(market.get("quote") or ""),
    )


def _top(side: Side, depth: int, *, descending: bool) -> list[Level]:
    return sorted(side.items(), reverse=descending)[:depth]


def audit_mismatches(
    snapshot_bids: Side,
    snapshot_asks: Side,
    books_in_window: Sequence[tuple[Side, Side]],
    depth: int,
) -> list[str]:
    """Return the levels where a REST snapshot disagrees with every book held meanwhile.

    The rule, since the snapshot and the streamed book are taken at different
    moments: for each side, take the snapshot's best ``depth`` levels; they
    say what every price from the best down to the ``depth``-th holds (a
    price they do not list holds nothing). A price in that range agrees when
    at least one book the kernel held between sending the request and a short
    while after the answer (``books_in_window``) had the same size there. Each
    price that agrees with none of them is a mismatch.
    """
    mismatches: list[str] = []
    for name, snapshot, index, descending in (
        ("bid", snapshot_bids, 0, True),
        ("ask", snapshot_asks, 1, False),
    ):
        levels = _top(snapshot, depth, descending=descending)
        if not levels:
            continue
        edge = levels[-1][0]
        listed = dict(levels)

        def in_range(price: int, edge: int = edge, descending: bool = descending) -> bool:
            return price >= edge if descending else price <= edge

        prices = set(listed)
        for books in books_in_window:
            prices.update(price for price in books[index] if in_range(price))
        for price in sorted(prices, reverse=descending):
            expected = listed.get(price, 0)
            if not any(books[index].get(price, 0) == expected for books in books_in_window):
                held = sorted({books[index].get(price, 0) for books in books_in_window})
                mismatches.append(f"{name} {price}: snapshot {expected}, book {held}")
    return mismatches


class _Entry:
    """Everything the adapter keeps for one symbol."""

    def __init__(self, unified: str, instrument: Instrument, history: int) -> None:
        self.unified = unified
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.book = L2Book()
        self.state = BookState.SYNCING
        self.ever_valid = False
        self.bids: Side = {}
        self.asks: Side = {}
        self.nonce: int | None = None
        self.updated_ns = time.monotonic_ns()
        self.invalid_since_ns = 0
        # (monotonic ns, bids, asks) of recent books, for audits.
        self.history: deque[tuple[int, Side, Side]] = deque(maxlen=history)
        self.generation = 0  # bumped on every invalidation: a running audit is void then
        self.watcher: asyncio.Task[None] | None = None
        self.resyncing = False
        venue = instrument.venue
        self.book_topic = topics.book(venue, self.symbol)
        self.snapshot_topic = topics.snapshot(venue, self.symbol)
        self.status_topic = topics.book_status(venue, self.symbol)
        self.quote_topic = topics.quote(venue, self.symbol)
        self.trade_topic = topics.trade(venue, self.symbol)


class CcxtMarketData:
    """Keep ``symbols`` (ccxt's unified names, ``BTC/USDT``) live and verified on ``bus``.

    ``exchange`` is a ``ccxt.pro`` client; :meth:`run` loads its markets, watches
    books and trades until :meth:`stop`, and closes it at the end.
    ``instruments`` (by the venue's symbol) overrides the precisions taken from
    ccxt's markets.
    """

    def __init__(
        self,
        exchange: Any,
        bus: Bus,
        symbols: Sequence[str],
        *,
        venue: str | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        depth: int = 50,
        trades: bool = True,
        stale_after_s: float = 10.0,
        audit_interval_s: float = 30.0,
        audit_depth: int = 20,
        audit_window_s: float = 1.0,
        resync_after_s: float = 2.0,
        retry_s: float = 0.5,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if not 0 < audit_depth <= depth:
            raise ValueError("audit_depth must be between 1 and depth")
        self.exchange = exchange
        self.bus = bus
        self.venue = venue or str(exchange.id)
        self.unified_symbols = list(symbols)
        self.depth = depth
        self.trades = trades
        self.stale_after_ns = int(stale_after_s * 1e9)
        self.audit_interval_s = audit_interval_s
        self.audit_depth = audit_depth
        self.audit_window_s = audit_window_s
        self.resync_after_ns = int(resync_after_s * 1e9)
        self.retry_s = retry_s
        self.stats = FeedStats()
        self.counters = CcxtCounters()
        self._instruments = dict(instruments or {})
        self._entries: dict[str, _Entry] = {}  # by the venue's symbol
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once markets are loaded and watches started

    # -- Feed protocol -------------------------------------------------------

    def book(self, symbol: str) -> L2Book | None:
        """Return the book of ``symbol`` (the venue's name), or None if it is not watched."""
        entry = self._entries.get(symbol)
        return None if entry is None else entry.book

    def book_state(self, symbol: str) -> BookState:
        """Return the sync state of ``symbol``'s book."""
        entry = self._entries.get(symbol)
        return BookState.SYNCING if entry is None else entry.state

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the instrument whose precisions scale ``symbol``'s prices and sizes."""
        entry = self._entries.get(symbol)
        return None if entry is None else entry.instrument

    @property
    def symbols(self) -> list[str]:
        """Return the venue's symbols being watched."""
        return sorted(self._entries)

    def on_frame(self, frame: object) -> None:
        """ccxt reads the sockets itself; there are no raw frames to hand in."""
        raise NotImplementedError("the ccxt adapter takes no raw frames")

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Load markets, watch every book (and trades) and audit them until :meth:`stop`."""
        try:
            if not await self._load_markets():
                return
            loop = asyncio.get_running_loop()
            for entry in self._entries.values():
                entry.watcher = loop.create_task(self._watch_book(entry))
                if self.trades:
                    self._tasks.append(loop.create_task(self._watch_trades(entry)))
            self._tasks.append(loop.create_task(self._watch_health()))
            self._tasks.append(loop.create_task(self._audit_loop()))
            self.ready.set()
            await self._stopping.wait()
        finally:
            tasks = [*self._tasks, *(e.watcher for e in self._entries.values() if e.watcher)]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.clear()
            with contextlib.suppress(Exception):
                await self.exchange.close()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopping.set()

    async def _load_markets(self) -> bool:
        while not self._stopping.is_set():
            try:
                markets = await self.exchange.load_markets()
                break
            except ccxt.BaseError as error:
                self.counters.watch_errors += 1
                log.warning("%s: loading markets failed: %s", self.venue, error)
                await wait_set(self._stopping, self.retry_s)
        else:
            return False
        mode = int(self.exchange.precisionMode)
        for unified in self.unified_symbols:
            market = markets.get(unified)
            if market is None:
                raise ValueError(f"{self.venue} has no market {unified!r}")
            instrument = self._instruments.get(str(market["id"]))
            if instrument is None:
                instrument = instrument_from_market(self.venue, market, mode)
            self._entries[instrument.symbol] = _Entry(unified, instrument, history=4096)
        return True

    # -- books ---------------------------------------------------------------

    async def _watch_book(self, entry: _Entry) -> None:
        exchange = self.exchange
        while True:
            try:
                book = await exchange.watch_order_book(entry.unified)
            except asyncio.CancelledError:
                if _cancelled_from_outside():
                    raise
                self.counters.watch_errors += 1  # ccxt cancelled its own wait on a close
                await asyncio.sleep(self.retry_s)
                continue
            except Exception as error:  # ccxt's errors, and anything its parsers raise
                self.counters.watch_errors += 1
                if entry.state is not BookState.INVALID:
                    self._invalidate(entry, f"ccxt: {type(error).__name__}: {error}")
                await asyncio.sleep(self.retry_s)
                continue
            self._on_book(entry, book)

    def _convert_side(self, entry: _Entry, levels: Iterable[Any]) -> Side:
        instrument = entry.instrument
        side: Side = {}
        for level in levels:
            if len(side) >= self.depth:
                break
            price = fixed_from_number(level[0], instrument.price_precision)
            size = fixed_from_number(level[1], instrument.size_precision)
            if size > 0:
                side[price] = size
        return side

    def _on_book(self, entry: _Entry, book: Mapping[str, Any]) -> None:
        recv_ns = time.time_ns()
        self.stats.frames += 1
        if entry.resyncing:
            return  # the old watch's book: wait for the new one
        try:
            bids = self._convert_side(entry, book["bids"])
            asks = self._convert_side(entry, book["asks"])
        except (FixedPointError, KeyError, TypeError, IndexError, ValueError) as error:
            self.stats.malformed_frames += 1
            log.warning("%s %s: unusable book from ccxt: %s", self.venue, entry.symbol, error)
            self._invalidate(entry, f"malformed book: {error}")
            return
        nonce = book.get("nonce")
        nonce = nonce if type(nonce) is int else None
        ts_event = book.get("timestamp")
        ts_event = ts_event * _MS if type(ts_event) is int else 0
        regressed = nonce is not None and entry.nonce is not None and nonce < entry.nonce
        if regressed and entry.state is BookState.VALID:
            self.counters.nonce_regressions += 1
            self.stats.gaps += 1
            self._invalidate(entry, f"nonce went back from {entry.nonce} to {nonce}")
            return
        if bids and asks and max(bids) >= min(asks):
            if entry.state is not BookState.INVALID:
                self.stats.crossed_books += 1
                self._invalidate(entry, f"crossed: bid {max(bids)} >= ask {min(asks)}")
            return
        now = time.monotonic_ns()
        entry.updated_ns = now
        entry.history.append((now, bids, asks))
        sequence = nonce if nonce is not None else entry.book.sequence + 1
        if entry.state is not BookState.VALID:
            self._load(entry, bids, asks, sequence=sequence, ts_event=ts_event, recv_ns=recv_ns)
            return
        first = (entry.nonce + 1) if entry.nonce is not None and nonce is not None else sequence
        entry.nonce = nonce
        self._publish_changes(
            entry, bids, asks, first=first, sequence=sequence, ts_event=ts_event, recv_ns=recv_ns
        )

    def _load(
        self, entry: _Entry, bids: Side, asks: Side, *, sequence: int, ts_event: int, recv_ns: int
    ) -> None:
        entry.book.load(bids.items(), asks.items(), sequence)
        entry.book.ts_event = ts_event
        entry.book.ts_recv = recv_ns
        entry.bids, entry.asks = bids, asks
        entry.nonce = sequence
        resync = entry.ever_valid
        self._set_state(entry, BookState.VALID, "resynced" if resync else "synced", recv_ns)
        if resync:
            self.stats.resyncs += 1
        entry.ever_valid = True
        self.stats.book_updates += 1
        self.stats.level_updates += len(bids) + len(asks)
        if self.bus.has_subscribers(entry.snapshot_topic):
            self.bus.publish(
                entry.snapshot_topic,
                BookSnapshot(
                    self.venue,
                    entry.symbol,
                    tuple(entry.book.bid_levels()),
                    tuple(entry.book.ask_levels()),
                    sequence,
                    ts_event,
                    recv_ns,
                ),
            )
        self._publish_quote(entry, sequence, ts_event, recv_ns)

    def _publish_changes(
        self,
        entry: _Entry,
        bids: Side,
        asks: Side,
        *,
        first: int,
        sequence: int,
        ts_event: int,
        recv_ns: int,
    ) -> None:
        bid_changes = _changes(entry.bids, bids)
        ask_changes = _changes(entry.asks, asks)
        entry.bids, entry.asks = bids, asks
        if not bid_changes and not ask_changes:
            return
        top_before = _top_of(entry.book)
        book = entry.book
        book.apply(bid_changes, ask_changes)
        book.sequence = sequence
        book.ts_event = ts_event
        book.ts_recv = recv_ns
        self.stats.book_updates += 1
        self.stats.level_updates += len(bid_changes) + len(ask_changes)
        if self.bus.handlers_for(entry.book_topic):
            self.bus.publish(
                entry.book_topic,
                BookDelta(
                    self.venue,
                    entry.symbol,
                    tuple(bid_changes),
                    tuple(ask_changes),
                    first,
                    sequence,
                    ts_event,
                    recv_ns,
                ),
            )
        if _top_of(book) != top_before:
            self._publish_quote(entry, sequence, ts_event, recv_ns)

    def _publish_quote(self, entry: _Entry, sequence: int, ts_event: int, recv_ns: int) -> None:
        bid_price, bid_size, ask_price, ask_size = _top_of(entry.book)
        self.stats.quotes += 1
        if self.bus.handlers_for(entry.quote_topic):
            self.bus.publish(
                entry.quote_topic,
                Quote(
                    self.venue,
                    entry.symbol,
                    bid_price,
                    bid_size,
                    ask_price,
                    ask_size,
                    sequence,
                    ts_event,
                    recv_ns,
                ),
            )

    # -- invalidation and resync --------------------------------------------

    def _invalidate(self, entry: _Entry, reason: str) -> None:
        log.warning(
            "%s %s: book invalid (%s); watching it afresh", self.venue, entry.symbol, reason
        )
        entry.generation += 1
        entry.book.clear()
        entry.bids, entry.asks = {}, {}
        entry.nonce = None
        entry.history.clear()
        entry.invalid_since_ns = time.monotonic_ns()
        self._set_state(entry, BookState.INVALID, reason, time.time_ns())
        self._start_resync(entry)

    def _start_resync(self, entry: _Entry) -> None:
        if entry.resyncing or self._stopping.is_set():
            return
        entry.resyncing = True
        task = asyncio.get_running_loop().create_task(self._resync(entry))
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _resync(self, entry: _Entry) -> None:
        """Drop ccxt's copy of the book and watch it again: ccxt fetches a new snapshot."""
        exchange = self.exchange
        try:
            watcher = entry.watcher
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            self.counters.resubscribes += 1
            unwatched = False
            if exchange.has.get("unWatchOrderBook"):
                try:
                    await asyncio.wait_for(exchange.un_watch_order_book(entry.unified), 2)
                    unwatched = True
                except (Exception, TimeoutError) as error:
                    log.info("%s %s: un-watch failed: %s", self.venue, entry.symbol, error)
            if not unwatched:
                await self._drop_connections()
            with contextlib.suppress(KeyError, TypeError):
                del exchange.orderbooks[entry.unified]
            entry.invalid_since_ns = time.monotonic_ns()
        finally:
            entry.resyncing = False
        if not self._stopping.is_set():
            entry.watcher = asyncio.get_running_loop().create_task(self._watch_book(entry))

    async def _drop_connections(self) -> None:
        """Close every ccxt connection and forget it: the next watch call dials afresh.

        A connection whose reader died (ccxt 4.5 lets a frame it cannot parse end
        its reader) never reports its own end, so it is removed by hand.
        """
        clients = self.exchange.clients or {}
        for url, client in list(clients.items()):
            client.reject(ccxt.NetworkError(f"{self.venue}: connection dropped to resync"))
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(client.close(), 2)
            clients.pop(url, None)

    def _set_state(self, entry: _Entry, state: BookState, reason: str, recv_ns: int) -> None:
        entry.state = state
        self.bus.publish(
            entry.status_topic,
            BookStatus(self.venue, entry.symbol, state, reason, entry.book.sequence, recv_ns),
        )

    async def _watch_health(self) -> None:
        """Invalidate books that stopped updating; watch again any that stays invalid."""
        period = min(self.stale_after_ns, self.resync_after_ns) / 4e9
        while True:
            await asyncio.sleep(max(period, 0.01))
            now = time.monotonic_ns()
            for entry in self._entries.values():
                if entry.state is BookState.VALID:
                    silent = now - entry.updated_ns
                    if silent >= self.stale_after_ns:
                        self.counters.stale_books += 1
                        self._invalidate(entry, f"stale: no update for {silent / 1e9:.1f}s")
                elif now - entry.invalid_since_ns >= self.resync_after_ns:
                    self._start_resync(entry)

    # -- audits --------------------------------------------------------------

    async def _audit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.audit_interval_s)
            for entry in list(self._entries.values()):
                await self.audit(entry.symbol)

    async def audit(self, symbol: str) -> bool | None:
        """Compare ``symbol``'s book with REST snapshots; return None when it could not run.

        A disagreement is checked once more with a new snapshot before the book
        is invalidated, so a book caught between two updates is not thrown away.
        """
        entry = self._entries[symbol]
        mismatches: list[str] | None = []
        for attempt in range(2):
            mismatches = await self._audit_once(entry)
            if mismatches is None:
                self.counters.audits_skipped += 1
                return None
            self.stats.oracle_checks += 1
            if not mismatches:
                return True
            if attempt == 0:
                self.counters.audit_rechecks += 1
                log.info(
                    "%s %s: audit disagrees (%s); checking again",
                    self.venue,
                    symbol,
                    "; ".join(mismatches[:3]),
                )
        self.stats.oracle_mismatches += 1
        self._invalidate(entry, f"audit failed: {'; '.join((mismatches or [])[:3])}")
        return False

    async def _audit_once(self, entry: _Entry) -> list[str] | None:
        if entry.state is not BookState.VALID:
            return None
        generation = entry.generation
        window_ns = int(self.audit_window_s * 1e9)
        asked_ns = time.monotonic_ns()
        try:
            snapshot = await asyncio.wait_for(
                self.exchange.fetch_order_book(entry.unified, self.audit_depth), 10
            )
        except (ccxt.BaseError, TimeoutError) as error:
            log.warning("%s %s: audit snapshot failed: %s", self.venue, entry.symbol, error)
            return None
        answered_ns = time.monotonic_ns()
        await asyncio.sleep(self.audit_window_s)  # books that arrive just after belong too
        if entry.generation != generation or entry.state is not BookState.VALID:
            return None
        try:
            bids = self._convert_side(entry, snapshot["bids"])
            asks = self._convert_side(entry, snapshot["asks"])
        except (FixedPointError, KeyError, TypeError, IndexError, ValueError) as error:
            self.stats.malformed_frames += 1
            log.warning("%s %s: unusable audit snapshot: %s", self.venue, entry.symbol, error)
            return None
        start, end = asked_ns - window_ns, answered_ns + window_ns
        books: list[tuple[Side, Side]] = []
        before: tuple[Side, Side] | None = None
        for held_ns, held_bids, held_asks in entry.history:
            if held_ns < start:
                before = (held_bids, held_asks)  # still held when the window opened
            elif held_ns <= end:
                books.append((held_bids, held_asks))
        if before is not None:
            books.insert(0, before)
        if not books:
            books.append((entry.bids, entry.asks))
        return audit_mismatches(bids, asks, books, self.audit_depth)

    # -- trades --------------------------------------------------------------

    async def _watch_trades(self, entry: _Entry) -> None:
        while True:
            try:
                trades = await self.exchange.watch_trades(entry.unified)
            except asyncio.CancelledError:
                if _cancelled_from_outside():
                    raise
                self.counters.watch_errors += 1
                await asyncio.sleep(self.retry_s)
                continue
            except Exception as error:
                self.counters.watch_errors += 1
                log.warning("%s %s: watch_trades: %s", self.venue, entry.symbol, error)
                await asyncio.sleep(self.retry_s)
                continue
            recv_ns = time.time_ns()
            for trade in trades:
                self._on_trade(entry, trade, recv_ns)

    def _on_trade(self, entry: _Entry, trade: Mapping[str, Any], recv_ns: int) -> None:
        instrument = entry.instrument
        try:
            price = fixed_from_number(trade["price"], instrument.price_precision)
            size = fixed_from_number(trade["amount"], instrument.size_precision)
        except (FixedPointError, KeyError, TypeError, ValueError) as error:
            self.stats.malformed_frames += 1
            log.warning("%s %s: unusable trade from ccxt: %s", self.venue, entry.symbol, error)
            return
        side = trade.get("side")
        aggressor = (
            AggressorSide.BUY
            if side == "buy"
            else AggressorSide.SELL
            if side == "sell"
            else AggressorSide.UNKNOWN
        )
        timestamp = trade.get("timestamp")
        self.stats.trades += 1
        if self.bus.handlers_for(entry.trade_topic):
            self.bus.publish(
                entry.trade_topic,
                Trade(
                    self.venue,
                    entry.symbol,
                    price,
                    size,
                    aggressor,
                    str(trade.get("id") or ""),
                    timestamp * _MS if type(timestamp) is int else 0,
                    recv_ns,
                ),
            )


def _cancelled_from_outside() -> bool:
    """Return whether the running task itself is being cancelled (not just a ccxt future)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _changes(before: Side, after: Side) -> list[Level]:
    """Return the level updates that turn ``before`` into ``after`` (size 0 removes)."""
    changed = [(price, size) for price, size in after.items() if before.get(price) != size]
    changed += [(price, 0) for price in before if price not in after]
    return changed


def _top_of(book: L2Book) -> tuple[int, int, int, int]:
    bid = book.best_bid()
    ask = book.best_ask()
    return (
        bid[0] if bid else 0,
        bid[1] if bid else 0,
        ask[0] if ask else 0,
        ask[1] if ask else 0,
    )
