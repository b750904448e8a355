"""Books, order events and a replay of real Binance data for the strategy tests.

Prices and sizes are those of Binance spot BTCUSDT in the kernel: 8 decimals
each, a 0.01 tick (``1_000_000``) and a 0.00001 lot (``1_000``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kernel
from kernel.adapters.binance import KNOWN_INSTRUMENTS, BinanceFeed
from kernel.bus import Bus, topics
from kernel.paper import FeeSchedule, PaperVenue
from kernel.recording import open_frames
from tradekernel_sdk.orders import (
    CancelRejected,
    CancelRequest,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
)
from tradekernel_sdk.strategy import dispatch_event
from tradekernel_sdk.testing import StrategyHarness, SubmittedIntent
from tradekernel_sdk.types import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    Trade,
)

DISTRIBUTION = Path(__file__).resolve().parents[2] / "plugins" / "tradekernel-strategies"
"""The distribution's folder: its pyproject.toml, README.md and src/."""

DATA = Path(kernel.__file__).parent / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"
"""The real Binance spot BTCUSDT slice bundled with the kernel (about 108 s of market data)."""

VENUE, SYMBOL = "binance", "BTCUSDT"
BTC = KNOWN_INSTRUMENTS[VENUE][SYMBOL]
TICK = BTC.tick
LOT = BTC.lot
QUANTITY = 100 * LOT
"""0.001 BTC."""
SECOND = 1_000_000_000
MS = 1_000_000

INSTRUMENT = {"venue": VENUE, "symbol": SYMBOL, "tick": TICK, "lot": LOT, "quantity": QUANTITY}
"""The instrument part of every strategy's configuration table."""

assert (TICK, LOT) == (1_000_000, 1_000), "the tests assume BTCUSDT's 0.01 tick and 0.00001 lot"


def price(text: str) -> int:
    """Return a decimal price as fixed-point."""
    return BTC.price(text)


def size(text: str) -> int:
    """Return a decimal size as fixed-point."""
    return BTC.size(text)


def book(
    bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]], ts: int, sequence: int = 1
) -> BookSnapshot:
    """Return a snapshot from decimal ``(price, size)`` pairs, received at ``ts``."""
    return BookSnapshot(
        VENUE,
        SYMBOL,
        tuple((price(p), size(s)) for p, s in bids),
        tuple((price(p), size(s)) for p, s in asks),
        sequence,
        ts,
        ts,
    )


def top(bid: str, ask: str, ts: int, bid_size: str = "1", ask_size: str = "1") -> BookSnapshot:
    """Return a one-level book."""
    return book([(bid, bid_size)], [(ask, ask_size)], ts)


def status(state: BookState, ts: int) -> BookStatus:
    """Return a book status change of BTCUSDT."""
    return BookStatus(VENUE, SYMBOL, state, "test", 0, ts)


def filled(
    client_order_id: str, quantity: int, fill_price: int, ts: int, leaves: int = 0
) -> OrderFilled:
    """Return a fill of one of the strategy's orders."""
    return OrderFilled(
        client_order_id,
        "v-" + client_order_id,
        VENUE,
        SYMBOL,
        ts,
        f"f-{client_order_id}-{ts}",
        fill_price,
        quantity,
        leaves,
        0,
        Liquidity.TAKER,
    )


def accepted(client_order_id: str, ts: int) -> OrderAccepted:
    """Return the venue's acceptance of an order."""
    return OrderAccepted(client_order_id, "v-" + client_order_id, VENUE, SYMBOL, ts)


def expired(client_order_id: str, ts: int) -> OrderExpired:
    """Return the expiry of an IOC remainder."""
    return OrderExpired(client_order_id, "v-" + client_order_id, VENUE, SYMBOL, ts, "ioc")


def canceled(client_order_id: str, ts: int) -> OrderCanceled:
    """Return the confirmation of a cancel."""
    return OrderCanceled(client_order_id, "v-" + client_order_id, VENUE, SYMBOL, ts)


def cancel_refused(client_order_id: str, ts: int) -> CancelRejected:
    """Return the venue's refusal of a cancel."""
    return CancelRejected(client_order_id, "", VENUE, SYMBOL, ts, "unknown order")


def rejected(client_order_id: str, ts: int, reason: str = "risk: max_order_rate") -> OrderRejected:
    """Return a rejection (the venue's, or the kernel's risk denial)."""
    return OrderRejected(client_order_id, "", VENUE, SYMBOL, ts, reason)


class StaticBook:
    """A :class:`~tradekernel_sdk.BookView` returning exactly the levels it was given.

    Unlike a real book it keeps zero and negative sizes, to feed strategies odd input.
    """

    def __init__(self, bids: Sequence[Level] = (), asks: Sequence[Level] = ()) -> None:
        """Keep the levels as given, best first."""
        self.bids = list(bids)
        self.asks = list(asks)

    def best_bid(self) -> Level | None:
        """Return the first bid, or ``None``."""
        return self.bids[0] if self.bids else None

    def best_ask(self) -> Level | None:
        """Return the first ask, or ``None``."""
        return self.asks[0] if self.asks else None

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Return the first ``depth`` bids."""
        return self.bids[:depth]

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Return the first ``depth`` asks."""
        return self.asks[:depth]


@dataclass(frozen=True)
class Submission:
    """An intent the strategy submitted during a replay, and the market it saw."""

    submitted: SubmittedIntent
    bids: list[Level]
    """The feed's best bids at that moment, best first."""
    asks: list[Level]
    position: int
    """The strategy's position when it submitted."""
    working: list[OrderSide]
    """Sides of the strategy's working orders, this one included."""
    probe: object
    """What the replay's ``probe`` returned for the strategy at that moment."""

    @property
    def best_bid(self) -> int:
        """Return the best bid price."""
        return self.bids[0][0]

    @property
    def best_ask(self) -> int:
        """Return the best ask price."""
        return self.asks[0][0]


@dataclass
class Replay:
    """Run a strategy on the bundled real data: the kernel's feed, bus and paper venue.

    The real :class:`~kernel.adapters.binance.BinanceFeed` parses the recording
    and publishes on a real :class:`~kernel.bus.Bus`; every ``BookDelta`` (and
    the ``BookSnapshot`` of the sync) on ``data.book.binance.BTCUSDT`` is handed
    to the strategy with the feed's live book. The strategy's intents and
    cancels go to a :class:`~kernel.paper.PaperVenue` matching against that
    same book, and its answers are fed back through the harness, which keeps
    the positions.
    """

    harness: StrategyHarness[Any]
    depth: int = 10
    drop_diff: int | None = None
    """Leave out this depth diff (0-based count of diffs): the feed sees a gap."""
    probe: Callable[[Any], object] = lambda strategy: None
    """Called with the strategy at each submission; the result is kept in the Submission."""
    bus: Bus = field(default_factory=Bus)
    submissions: list[Submission] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    """The position after every fill."""
    events: list[OrderEvent] = field(default_factory=list)
    statuses: list[BookStatus] = field(default_factory=list)
    working_at_status: list[set[str]] = field(default_factory=list)
    """The strategy's working order ids just before each status reached it."""
    book_updates: int = 0
    crossed_quotes: int = 0
    """Moments when the strategy's own working bid was at or above its working ask."""

    def __post_init__(self) -> None:
        """Wire the feed, the paper venue and the strategy to the bus."""
        self.feed = BinanceFeed(self.bus, "spot")
        self.venue = PaperVenue(
            self.bus,
            instruments={SYMBOL: BTC},
            venue_name=VENUE,
            market_venue=VENUE,
            fees=FeeSchedule(maker_bps=10, taker_bps=10),
            books=self.feed.book,
            register_endpoints=False,
        )
        self._answers: deque[OrderEvent] = deque()
        self._forwarded = 0
        self._cancelled = 0
        self.bus.subscribe(topics.orders(VENUE), self._answers.append)
        self.bus.subscribe(topics.snapshot(VENUE, SYMBOL), self._on_book)
        self.bus.subscribe(topics.book(VENUE, SYMBOL), self._on_book)
        self.bus.subscribe(topics.book_status(VENUE, SYMBOL), self._on_market)
        self.bus.subscribe(topics.trade(VENUE, SYMBOL), self._on_market)

    def run(self) -> Replay:
        """Replay the whole recording, stop the strategy and settle its last orders.

        The harness's clock starts at the first frame, so timers set in
        ``on_start`` count from the recording's time rather than from 1970.
        """
        frames = open_frames(DATA)
        first = next(frames)
        self.harness.context.now_ns = max(self.harness.context.now_ns, first.recv_ns)
        self.harness.start()
        diffs = 0
        for frame in itertools.chain([first], frames):
            if b"@depth" in frame.payload[:40]:
                diffs += 1
                if diffs - 1 == self.drop_diff:
                    continue
            self.feed.on_frame(frame)
        self._pump()
        self.harness.stop()
        self._pump()
        assert self.bus.handler_errors == 0, "a handler raised; see the log"
        assert self.feed.stats.malformed_frames == 0
        return self

    @property
    def intents(self) -> list[SubmittedIntent]:
        """Return every intent the strategy submitted."""
        return [submission.submitted for submission in self.submissions]

    def fills(self) -> list[OrderFilled]:
        """Return every fill of the strategy's orders."""
        return [event for event in self.events if isinstance(event, OrderFilled)]

    def side_of(self, client_order_id: str) -> OrderSide:
        """Return the side of one of the strategy's orders."""
        for submission in self.submissions:
            if submission.submitted.client_order_id == client_order_id:
                return submission.submitted.intent.side
        raise KeyError(client_order_id)

    def _on_book(self, update: BookDelta | BookSnapshot) -> None:
        self.book_updates += 1
        live = self.feed.book(SYMBOL)
        # As in the kernel, the strategy's context.book() is the feed's live book.
        self.harness.context.books[(VENUE, SYMBOL)] = cast(Any, live)
        self._pump()
        self.harness.advance(update.ts_recv)
        self._pump()
        dispatch_event(self.harness.strategy, update, live)
        self._pump()

    def _on_market(self, event: BookStatus | Trade) -> None:
        self._pump()
        if isinstance(event, BookStatus):
            self.statuses.append(event)
            self.working_at_status.append(set(self.harness.context.working))
        self.harness.feed(event)
        self._pump()

    def _pump(self) -> None:
        """Send new intents and cancels to the venue and feed its answers back until quiet."""
        context = self.harness.context
        while True:
            if self._forwarded < len(context.submitted):
                submitted = context.submitted[self._forwarded]
                self._forwarded += 1
                self._record(submitted)
                self.venue.submit(
                    submitted.intent.to_request(submitted.client_order_id, submitted.ts_ns)
                )
            elif self._cancelled < len(context.cancel_requests):
                client_order_id = context.cancel_requests[self._cancelled]
                self._cancelled += 1
                self.venue.cancel(CancelRequest(client_order_id, VENUE, SYMBOL, context.now_ns))
            elif self._answers:
                event = self._answers.popleft()
                self.events.append(event)
                self.harness.feed(event)
                if isinstance(event, OrderFilled):
                    self.positions.append(context.position(VENUE, SYMBOL))
                self._check_own_quotes()
            else:
                return

    def _record(self, submitted: SubmittedIntent) -> None:
        live = self.feed.book(SYMBOL)
        assert live is not None
        context = self.harness.context
        self.submissions.append(
            Submission(
                submitted,
                live.bid_levels(self.depth),
                live.ask_levels(self.depth),
                context.position(VENUE, SYMBOL),
                [intent.side for intent in context.working.values()],
                self.probe(self.harness.strategy),
            )
        )
        self._check_own_quotes()

    def _check_own_quotes(self) -> None:
        working = self.harness.context.working.values()
        bids = [i.price for i in working if i.side is OrderSide.BUY and i.price is not None]
        asks = [i.price for i in working if i.side is OrderSide.SELL and i.price is not None]
        if bids and asks and max(bids) >= min(asks):
            self.crossed_quotes += 1
