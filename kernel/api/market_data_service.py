"""``MarketDataService``: book snapshots and the book stream.

Each ``StreamBooks`` client has its own :class:`BookFeed`: the bus hands it
events synchronously and it only records them, within a fixed bound, so a
slow client never blocks the kernel. Deltas queue up to ``max_queued``; when
the queue is full the instrument's queued deltas are dropped and the client
gets a fresh snapshot instead (conflation to the latest book). With
``throttle_ms`` every update is conflated into at most one snapshot per
instrument per interval. Dropped and conflated updates are counted in
:class:`StreamStats`.

``StreamQuotes`` and ``StreamTrades`` use an :class:`EventFeed` per client:
quotes conflate to the latest per instrument (a client behind gets the newest
best bid and offer, counted in ``quote_stats.conflated``), trades drop the
oldest queued trade when ``max_queued`` are waiting (``trade_stats.dropped``).
A ``StreamTrades`` client may ask for batches (``max_batch``): the trades
waiting when the stream writes go in one message, fewer and larger messages
being what lets one stream carry tens of thousands of trades a second.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc

from kernel.api.convert import decimal, instrument_message, to_proto_enum
from kernel.api.errors import ApiError, invalid, unary
from kernel.api.feeds import EventFeed, FeedStats, Overflow
from kernel.api.parts import ApiParts
from kernel.book import L2Book
from kernel.bus import topics
from tradekernel_sdk.proto.tradekernel.v1 import market_data_pb2, market_data_pb2_grpc
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

__all__ = ["BookFeed", "MarketDataServicer", "StreamStats"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

MAX_QUEUED = 1024
MAX_TRADE_BATCH = 1024
"""The most trades ``StreamTrades`` puts in one message (``max_batch``)."""
"""Deltas and status events one stream may hold before it conflates."""


@dataclass
class StreamStats:
    """Counters of every book stream since start."""

    streams: int = 0
    """Streams open now."""
    sent: int = 0
    """Messages handed to gRPC."""
    dropped: int = 0
    """Deltas dropped because a client's queue was full (replaced by a snapshot)."""
    conflated: int = 0
    """Updates folded into a snapshot still waiting to be sent."""


def _levels(levels: list[Level], price_precision: int, size_precision: int) -> list[Any]:
    return [
        market_data_pb2.Level(
            price=decimal(price, price_precision), size=decimal(size, size_precision)
        )
        for price, size in levels
    ]


def snapshot_message(
    instrument: Instrument, book: L2Book, depth: int
) -> market_data_pb2.BookSnapshot:
    """Return ``depth`` levels per side of ``book`` (0: every level)."""
    limit = depth or None
    return market_data_pb2.BookSnapshot(
        venue=instrument.venue,
        symbol=instrument.symbol,
        bids=_levels(book.bid_levels(limit), instrument.price_precision, instrument.size_precision),
        asks=_levels(book.ask_levels(limit), instrument.price_precision, instrument.size_precision),
        sequence=book.sequence,
        ts_event=book.ts_event,
        ts_recv=book.ts_recv,
    )


@dataclass
class _Pending:
    """What one instrument of one stream still has to send."""

    instrument: Instrument
    deltas: deque[BookDelta] = field(default_factory=deque)
    snapshot: bool = True  # a fresh snapshot is due (start, resync, overflow, throttle)
    invalid: bool = False


class BookFeed:
    """One client's bounded view of the bus's book events."""

    def __init__(
        self,
        instruments: list[Instrument],
        *,
        conflate: bool,
        stats: StreamStats,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.pending = {(item.venue, item.symbol): _Pending(item) for item in instruments}
        self.statuses: deque[BookStatus] = deque()
        self.conflate = conflate
        self.stats = stats
        self.max_queued = max_queued
        self.queued = 0
        self.ready = asyncio.Event()
        self.ready.set()  # the first snapshots are due at once

    def subscriptions(self) -> list[tuple[str, Callable[[Any], None]]]:
        """Return the bus topics and handlers this feed listens with."""
        handlers: list[tuple[str, Callable[[Any], None]]] = []
        for venue, symbol in self.pending:
            handlers += [
                (topics.book(venue, symbol), self.on_delta),
                (topics.snapshot(venue, symbol), self.on_snapshot),
                (topics.book_status(venue, symbol), self.on_status),
            ]
        return handlers

    def on_delta(self, delta: BookDelta) -> None:
        """Queue a delta, or fold it into the snapshot due."""
        pending = self.pending.get((delta.venue, delta.symbol))
        if pending is None or pending.invalid:
            return
        if pending.snapshot or self.conflate:
            if pending.snapshot:
                self.stats.conflated += 1
            pending.snapshot = True
        elif self.queued >= self.max_queued:
            self.stats.dropped += len(pending.deltas) + 1
            self.queued -= len(pending.deltas)
            pending.deltas.clear()
            pending.snapshot = True
        else:
            pending.deltas.append(delta)
            self.queued += 1
        self.ready.set()

    def on_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace whatever is queued for the instrument with a fresh snapshot."""
        pending = self.pending.get((snapshot.venue, snapshot.symbol))
        if pending is None:
            return
        self._clear(pending)
        pending.snapshot = True
        self.ready.set()

    def on_status(self, status: BookStatus) -> None:
        """Queue a change of a book's state; nothing else is sent while it is INVALID."""
        pending = self.pending.get((status.venue, status.symbol))
        if pending is None:
            return
        pending.invalid = status.state is not BookState.VALID
        self._clear(pending)
        pending.snapshot = not pending.invalid
        if len(self.statuses) >= self.max_queued:
            self.statuses.popleft()
            self.stats.dropped += 1
        self.statuses.append(status)
        self.ready.set()

    def _clear(self, pending: _Pending) -> None:
        self.stats.conflated += len(pending.deltas)
        self.queued -= len(pending.deltas)
        pending.deltas.clear()


class MarketDataServicer(market_data_pb2_grpc.MarketDataServiceServicer):
    """Serve books to external clients."""

    def __init__(self, parts: ApiParts, *, max_queued: int = MAX_QUEUED) -> None:
        self.parts = parts
        self.stats = StreamStats()
        self.quote_stats = FeedStats()
        """Counters of ``StreamQuotes``."""
        self.trade_stats = FeedStats()
        """Counters of ``StreamTrades``."""
        self.max_queued = max_queued

    def _instrument(self, venue: str, symbol: str, field_name: str) -> Instrument:
        if not venue:
            raise invalid(f"{field_name}.venue", "required")
        if not symbol:
            raise invalid(f"{field_name}.symbol", "required")
        instrument = self.parts.instrument(venue, symbol)
        if instrument is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"{field_name}: no book for {venue}.{symbol}")
        return instrument

    @unary
    async def GetBookSnapshot(
        self, request: market_data_pb2.GetBookSnapshotRequest, context: Context
    ) -> market_data_pb2.GetBookSnapshotResponse:
        """Return one instrument's book; FAILED_PRECONDITION while it is not VALID."""
        instrument = self._instrument(
            request.instrument.venue, request.instrument.symbol, "instrument"
        )
        state = self.parts.market.book_state(instrument.venue, instrument.symbol)
        book = self.parts.market.book(instrument.venue, instrument.symbol)
        if state is not BookState.VALID or book is None:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"instrument: the book of {instrument.key} is {state.name}, not VALID",
            )
        return market_data_pb2.GetBookSnapshotResponse(
            snapshot=snapshot_message(instrument, book, request.depth),
            state=to_proto_enum(market_data_pb2.BookState, "BOOK_STATE", state),
        )

    @unary
    async def ListInstruments(
        self, request: market_data_pb2.ListInstrumentsRequest, context: Context
    ) -> market_data_pb2.ListInstrumentsResponse:
        """List the instruments the kernel has books for, by venue, then symbol."""
        instruments = sorted(self.parts.instruments(), key=lambda item: (item.venue, item.symbol))
        return market_data_pb2.ListInstrumentsResponse(
            instruments=[
                instrument_message(item)
                for item in instruments
                if not request.venue or item.venue == request.venue
            ]
        )

    async def _instruments(
        self, requested: Sequence[Any], context: Context
    ) -> dict[tuple[str, str], Instrument]:
        """Return the requested instruments by (venue, symbol); abort the call when one is bad."""
        try:
            if not requested:
                raise invalid("instruments", "at least one instrument is required")
            instruments = [
                self._instrument(item.venue, item.symbol, f"instruments[{index}]")
                for index, item in enumerate(requested)
            ]
        except ApiError as error:
            await context.abort(error.code, error.message)
        return {(item.venue, item.symbol): item for item in instruments}

    async def StreamBooks(
        self, request: market_data_pb2.StreamBooksRequest, context: Context
    ) -> AsyncIterator[market_data_pb2.StreamBooksResponse]:
        """Stream a snapshot per instrument, then deltas (or conflated snapshots)."""
        try:
            if not request.instruments:
                raise invalid("instruments", "at least one instrument is required")
            instruments = [
                self._instrument(item.venue, item.symbol, f"instruments[{index}]")
                for index, item in enumerate(request.instruments)
            ]
        except ApiError as error:
            await context.abort(error.code, error.message)
        feed = BookFeed(
            instruments,
            conflate=request.throttle_ms > 0,
            stats=self.stats,
            max_queued=self.max_queued,
        )
        bus = self.parts.bus
        subscriptions = feed.subscriptions()
        for pattern, handler in subscriptions:
            bus.subscribe(pattern, handler)
        self.stats.streams += 1
        try:
            while True:
                await feed.ready.wait()
                feed.ready.clear()
                for message in self._drain(feed, request.depth):
                    self.stats.sent += 1
                    yield message
                if request.throttle_ms:
                    await asyncio.sleep(request.throttle_ms / 1000)
        finally:
            self.stats.streams -= 1
            for pattern, handler in subscriptions:
                bus.unsubscribe(pattern, handler)

    def _drain(self, feed: BookFeed, depth: int) -> list[market_data_pb2.StreamBooksResponse]:
        """Take everything the feed holds now, as messages, in order."""
        messages: list[market_data_pb2.StreamBooksResponse] = []
        while feed.statuses:
            status = feed.statuses.popleft()
            messages.append(
                market_data_pb2.StreamBooksResponse(
                    status=market_data_pb2.BookStatus(
                        venue=status.venue,
                        symbol=status.symbol,
                        state=to_proto_enum(market_data_pb2.BookState, "BOOK_STATE", status.state),
                        reason=status.reason,
                        sequence=status.sequence,
                        ts_recv=status.ts_recv,
                    )
                )
            )
        market = self.parts.market
        for pending in feed.pending.values():
            instrument = pending.instrument
            if pending.snapshot:
                book = market.book(instrument.venue, instrument.symbol)
                state = market.book_state(instrument.venue, instrument.symbol)
                if book is None or state is not BookState.VALID:
                    continue  # sent when the book is VALID again
                feed.queued -= len(pending.deltas)
                pending.deltas.clear()  # the snapshot already holds them
                pending.snapshot = False
                messages.append(
                    market_data_pb2.StreamBooksResponse(
                        snapshot=snapshot_message(instrument, book, depth)
                    )
                )
                continue
            price, size = instrument.price_precision, instrument.size_precision
            while pending.deltas:
                delta = pending.deltas.popleft()
                feed.queued -= 1
                messages.append(
                    market_data_pb2.StreamBooksResponse(
                        delta=market_data_pb2.BookDelta(
                            venue=delta.venue,
                            symbol=delta.symbol,
                            bids=_levels(list(delta.bids), price, size),
                            asks=_levels(list(delta.asks), price, size),
                            first_sequence=delta.first_sequence,
                            sequence=delta.sequence,
                            ts_event=delta.ts_event,
                            ts_recv=delta.ts_recv,
                        )
                    )
                )
        return messages

    async def StreamQuotes(
        self, request: market_data_pb2.StreamQuotesRequest, context: Context
    ) -> AsyncIterator[market_data_pb2.StreamQuotesResponse]:
        """Stream best bid and offer updates, conflated to the latest per instrument."""
        instruments = await self._instruments(request.instruments, context)
        feed: EventFeed[Quote] = EventFeed(
            self.quote_stats, max_queued=len(instruments), key=_instrument_key
        )

        def on_quote(quote: Any) -> None:
            if isinstance(quote, Quote):
                feed.push(quote)

        subscriptions = [(topics.quote(venue, symbol), on_quote) for venue, symbol in instruments]
        with feed.attached(self.parts.bus, subscriptions):
            while True:
                for quote in await feed.take():
                    instrument = instruments[(quote.venue, quote.symbol)]
                    price, size = instrument.price_precision, instrument.size_precision
                    self.quote_stats.sent += 1
                    yield market_data_pb2.StreamQuotesResponse(
                        quote=market_data_pb2.Quote(
                            venue=quote.venue,
                            symbol=quote.symbol,
                            bid_price=decimal(quote.bid_price, price),
                            bid_size=decimal(quote.bid_size, size),
                            ask_price=decimal(quote.ask_price, price),
                            ask_size=decimal(quote.ask_size, size),
                            sequence=quote.sequence,
                            ts_event=quote.ts_event,
                            ts_recv=quote.ts_recv,
                        )
                    )

    async def StreamTrades(
        self, request: market_data_pb2.StreamTradesRequest, context: Context
    ) -> AsyncIterator[market_data_pb2.StreamTradesResponse]:
        """Stream public trades, one or a batch a message; a client far behind loses the oldest."""
        if request.max_batch > MAX_TRADE_BATCH:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"max_batch: at most {MAX_TRADE_BATCH}, got {request.max_batch}",
            )
        batch = max(request.max_batch, 1)
        instruments = await self._instruments(request.instruments, context)
        feed: EventFeed[Trade] = EventFeed(
            self.trade_stats, max_queued=self.max_queued, overflow=Overflow.DROP_OLDEST
        )

        def on_trade(trade: Any) -> None:
            if isinstance(trade, Trade):
                feed.push(trade)

        def message(trade: Trade) -> market_data_pb2.Trade:
            instrument = instruments[(trade.venue, trade.symbol)]
            aggressor = market_data_pb2.AGGRESSOR_SIDE_UNSPECIFIED
            if trade.aggressor is not AggressorSide.UNKNOWN:
                aggressor = to_proto_enum(
                    market_data_pb2.AggressorSide, "AGGRESSOR_SIDE", trade.aggressor
                )
            return market_data_pb2.Trade(
                venue=trade.venue,
                symbol=trade.symbol,
                price=decimal(trade.price, instrument.price_precision),
                size=decimal(trade.size, instrument.size_precision),
                aggressor=aggressor,
                trade_id=trade.trade_id,
                ts_event=trade.ts_event,
                ts_recv=trade.ts_recv,
            )

        subscriptions = [(topics.trade(venue, symbol), on_trade) for venue, symbol in instruments]
        with feed.attached(self.parts.bus, subscriptions):
            while True:
                trades = await feed.take()
                if batch == 1:
                    for trade in trades:
                        self.trade_stats.sent += 1
                        yield market_data_pb2.StreamTradesResponse(trade=message(trade))
                    continue
                for start in range(0, len(trades), batch):
                    chunk = trades[start : start + batch]
                    self.trade_stats.sent += len(chunk)
                    yield market_data_pb2.StreamTradesResponse(
                        trades=[message(trade) for trade in chunk]
                    )


def _instrument_key(event: Quote) -> tuple[str, str]:
    return (event.venue, event.symbol)
