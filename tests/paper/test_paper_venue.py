"""Specifications of the paper venue on small hand-built books."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.book import L2Book
from kernel.bus import Bus, topics
from kernel.paper import FeeSchedule, PaperVenue
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
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.types import (
    AggressorSide,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    Trade,
)

BTC = Instrument("binance", "BTCUSDT", 2, 5, tick=1, lot=1, base="BTC", quote="USDT")
# An instrument with a coarser tick and lot, to test the grid checks.
ETH = Instrument("binance", "ETHUSDT", 2, 4, tick=5, lot=10, base="ETH", quote="USDT")
NO_FEES = FeeSchedule(maker_bps=0, taker_bps=0)

BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Market:
    """A feed stand-in: keeps the real books, publishes market data, records order events."""

    def __init__(
        self,
        *,
        latency_ns: int = 0,
        fees: FeeSchedule = NO_FEES,
        own_books: bool = False,
        bus: Bus | None = None,
    ) -> None:
        self.bus = bus or Bus()
        self.books: dict[str, L2Book] = {}
        self.events: list[OrderEvent] = []
        self.bus.subscribe(topics.orders("paper"), self.events.append)
        self.ts = 0
        self.venue = PaperVenue(
            self.bus,
            instruments={BTC.symbol: BTC, ETH.symbol: ETH},
            fees=fees,
            latency_ns=latency_ns,
            books=None if own_books else self.books.get,
        )

    def _stamp(self, ts: int | None) -> int:
        if ts is not None:
            self.ts = ts
        return self.ts

    def snapshot(
        self,
        bids: Sequence[Level],
        asks: Sequence[Level],
        *,
        ts: int | None = None,
        symbol: str = "BTCUSDT",
    ) -> None:
        book = self.books.setdefault(symbol, L2Book())
        book.load(bids, asks)
        t = self._stamp(ts)
        self.bus.publish(
            topics.snapshot("binance", symbol),
            BookSnapshot("binance", symbol, tuple(bids), tuple(asks), 1, t, t),
        )

    def delta(
        self,
        bids: Sequence[Level] = (),
        asks: Sequence[Level] = (),
        *,
        ts: int | None = None,
        symbol: str = "BTCUSDT",
    ) -> None:
        self.books[symbol].apply(bids, asks)
        t = self._stamp(ts)
        self.bus.publish(
            topics.book("binance", symbol),
            BookDelta("binance", symbol, tuple(bids), tuple(asks), 1, 1, t, t),
        )

    def trade(
        self,
        price: int,
        size: int,
        aggressor: AggressorSide,
        *,
        ts: int | None = None,
        symbol: str = "BTCUSDT",
    ) -> None:
        t = self._stamp(ts)
        self.bus.publish(
            topics.trade("binance", symbol),
            Trade("binance", symbol, price, size, aggressor, "t", t, t),
        )

    def status(self, state: BookState, *, ts: int | None = None) -> None:
        t = self._stamp(ts)
        self.bus.publish(
            topics.book_status("binance", "BTCUSDT"),
            BookStatus("binance", "BTCUSDT", state, "test", 1, t),
        )

    def order(
        self,
        cid: str,
        side: OrderSide,
        quantity: int,
        price: int | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        *,
        symbol: str = "BTCUSDT",
        venue: str = "paper",
    ) -> OrderRequest:
        order_type = OrderType.MARKET if price is None else OrderType.LIMIT
        request = OrderRequest(cid, venue, symbol, side, order_type, quantity, price, tif, self.ts)
        self.venue.submit(request)
        return request

    def cancel(self, cid: str) -> None:
        self.venue.cancel(CancelRequest(cid, "paper", "BTCUSDT", self.ts))

    def of(self, cid: str) -> list[OrderEvent]:
        return [e for e in self.events if e.client_order_id == cid]

    def fills(self, cid: str) -> list[tuple[int, int, int]]:
        """Return ``(price, quantity, leaves)`` of each fill of an order."""
        return [
            (e.price, e.quantity, e.leaves_quantity)
            for e in self.events
            if isinstance(e, OrderFilled) and e.client_order_id == cid
        ]

    def reason(self, cid: str) -> str:
        (event,) = [e for e in self.of(cid) if isinstance(e, OrderRejected)]
        return event.reason


BIDS: list[Level] = [(99, 4), (98, 6), (96, 10)]
ASKS: list[Level] = [(100, 3), (101, 5), (103, 10)]


@pytest.fixture(params=[False, True], ids=["book-lookup", "own-books"])
def market(request: pytest.FixtureRequest) -> Market:
    m = Market(own_books=request.param)
    m.snapshot(BIDS, ASKS, ts=1_000)
    return m


# -- taking liquidity ------------------------------------------------------------


def test_market_buy_walks_the_book_with_partial_fills(market: Market) -> None:
    market.order("m1", BUY, 10)

    events = market.of("m1")
    assert isinstance(events[0], OrderAccepted)
    assert market.fills("m1") == [(100, 3, 7), (101, 5, 2), (103, 2, 0)]
    assert all(isinstance(e, OrderFilled) and e.liquidity is Liquidity.TAKER for e in events[1:])
    assert market.venue.open_orders() == []


def test_market_sell_walks_bids_downwards(market: Market) -> None:
    market.order("s1", SELL, 12)
    assert market.fills("s1") == [(99, 4, 8), (98, 6, 2), (96, 2, 0)]


def test_market_order_beyond_displayed_liquidity_fills_it_and_expires_the_rest(
    market: Market,
) -> None:
    market.order("m1", BUY, 25)

    assert market.fills("m1") == [(100, 3, 22), (101, 5, 17), (103, 10, 7)]
    last = market.of("m1")[-1]
    assert isinstance(last, OrderExpired)
    assert "liquidity" in last.reason
    assert market.venue.expired == 1


def test_marketable_limit_stops_at_its_price_and_rests_the_remainder(market: Market) -> None:
    market.order("l1", BUY, 10, price=101)

    assert market.fills("l1") == [(100, 3, 7), (101, 5, 2)]
    (resting,) = market.venue.open_orders()
    assert resting.leaves == 2
    assert resting.request.price == 101


def test_consumed_liquidity_is_not_reused_until_the_level_changes(market: Market) -> None:
    market.order("a", BUY, 2)
    market.order("b", BUY, 2)
    assert market.fills("a") == [(100, 2, 0)]
    assert market.fills("b") == [(100, 1, 1), (101, 1, 0)]

    # An unrelated level changing does not refresh level 100...
    market.delta(bids=[(97, 1)])
    market.order("c", BUY, 1)
    assert market.fills("c") == [(101, 1, 0)]

    # ...but a new size at 100 is what the real market now shows there.
    market.delta(asks=[(100, 2)])
    market.order("d", BUY, 3)
    assert market.fills("d") == [(100, 2, 1), (101, 1, 0)]


# -- resting orders and the queue ------------------------------------------------


def test_limit_order_rests_then_fills_when_trade_prints_through(market: Market) -> None:
    market.order("r1", BUY, 3, price=99)
    (resting,) = market.venue.open_orders()
    assert resting.queue_ahead == 4  # the displayed bid at 99 when it joined

    market.trade(99, 2, AggressorSide.SELL)  # eats into the queue ahead
    assert market.fills("r1") == []
    market.trade(99, 3, AggressorSide.SELL)  # 2 left ahead, 1 for us
    assert market.fills("r1") == [(99, 1, 2)]
    market.trade(97, 5, AggressorSide.SELL)  # through our price: the level is gone
    assert market.fills("r1") == [(99, 1, 2), (99, 2, 0)]

    fills = [e for e in market.of("r1") if isinstance(e, OrderFilled)]
    assert all(f.liquidity is Liquidity.MAKER for f in fills)
    assert market.venue.open_orders() == []


def test_trade_at_our_price_by_same_side_aggressor_does_not_fill(market: Market) -> None:
    market.order("r1", BUY, 3, price=99)
    market.trade(99, 50, AggressorSide.BUY)
    assert market.fills("r1") == []


def test_trade_above_a_resting_bid_does_not_fill_it(market: Market) -> None:
    market.order("r1", BUY, 3, price=99)
    market.trade(100, 50, AggressorSide.SELL)
    assert market.fills("r1") == []


def test_queue_ahead_only_shrinks_with_the_level(market: Market) -> None:
    market.order("r1", BUY, 3, price=99)
    market.delta(bids=[(99, 10)])  # others join behind us
    assert market.venue.open_orders()[0].queue_ahead == 4
    market.delta(bids=[(99, 1)])  # at most 1 can still be ahead
    assert market.venue.open_orders()[0].queue_ahead == 1

    market.trade(99, 2, AggressorSide.SELL)
    assert market.fills("r1") == [(99, 1, 2)]


def test_resting_orders_share_a_trade_in_price_time_priority(market: Market) -> None:
    market.delta(bids=[(99, 0)])  # an empty level: nothing ahead of us
    market.order("first", BUY, 3, price=99)
    market.order("second", BUY, 3, price=99)
    market.order("lower", BUY, 2, price=98)
    market.trade(99, 4, AggressorSide.SELL)

    assert market.fills("first") == [(99, 3, 0)]
    assert market.fills("second") == [(99, 1, 2)]
    assert market.fills("lower") == []


def test_resting_order_fills_when_the_book_crosses_its_price(market: Market) -> None:
    market.order("r1", BUY, 5, price=99)
    market.delta(asks=[(98, 2), (99, 1)], bids=[(99, 0), (98, 0)])

    assert market.fills("r1") == [(99, 2, 3), (99, 1, 2)]
    # The crossing liquidity is used up for other simulated orders.
    market.order("m1", BUY, 1)
    assert market.fills("m1") == [(100, 1, 0)]


def test_post_only_rests_when_it_does_not_cross(market: Market) -> None:
    market.order("p1", SELL, 2, price=100, tif=TimeInForce.POST_ONLY)
    assert [type(e) for e in market.of("p1")] == [OrderAccepted]
    assert market.venue.open_orders()[0].queue_ahead == 3


def test_ioc_fills_what_it_can_and_expires_the_rest(market: Market) -> None:
    market.order("i1", BUY, 5, price=100, tif=TimeInForce.IOC)
    assert market.fills("i1") == [(100, 3, 2)]
    assert isinstance(market.of("i1")[-1], OrderExpired)
    assert market.venue.open_orders() == []


def test_fok_fills_completely_or_not_at_all(market: Market) -> None:
    market.order("f1", BUY, 9, price=101, tif=TimeInForce.FOK)
    assert market.fills("f1") == []
    assert isinstance(market.of("f1")[-1], OrderExpired)

    market.order("f2", BUY, 8, price=101, tif=TimeInForce.FOK)
    assert market.fills("f2") == [(100, 3, 5), (101, 5, 0)]


# -- time ------------------------------------------------------------------------


def test_order_takes_effect_after_latency() -> None:
    market = Market(latency_ns=1_000)
    market.snapshot(BIDS, ASKS, ts=10_000)
    market.order("m1", BUY, 4)
    assert market.events == []
    assert market.venue.pending == 1

    market.delta(asks=[(100, 1)], ts=10_500)  # not yet due
    assert market.events == []
    market.delta(asks=[(100, 2)], ts=11_000)  # due: sees the book as it is now

    accepted = market.of("m1")[0]
    assert isinstance(accepted, OrderAccepted)
    assert accepted.ts_event == 11_000
    assert market.fills("m1") == [(100, 2, 2), (101, 2, 0)]
    assert market.venue.pending == 0


def test_poll_applies_requests_due_by_an_injected_clock() -> None:
    now = [0]
    bus = Bus()
    events: list[OrderEvent] = []
    bus.subscribe(topics.orders("paper"), events.append)
    book = L2Book()
    book.load(BIDS, ASKS)
    venue = PaperVenue(
        bus,
        instruments={"BTCUSDT": BTC},
        fees=NO_FEES,
        latency_ns=50,
        clock=lambda: now[0],
        books={"BTCUSDT": book}.get,
    )
    venue.submit(OrderRequest("m1", "paper", "BTCUSDT", BUY, OrderType.MARKET, 1))
    now[0] = 49
    venue.poll()
    assert events == []
    now[0] = 50
    venue.poll()
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]


def test_cancel_takes_effect_after_latency_and_the_order_can_fill_meanwhile() -> None:
    market = Market(latency_ns=100)
    market.snapshot(BIDS, ASKS, ts=1_000)
    market.order("r1", BUY, 5, price=99)
    market.trade(99, 1, AggressorSide.SELL, ts=1_100)  # accepted at 1_100, queue 4 → 3
    market.cancel("r1")  # due at 1_200
    market.trade(99, 5, AggressorSide.SELL, ts=1_150)  # 3 ahead, 2 for us
    market.trade(99, 5, AggressorSide.SELL, ts=1_200)  # the cancel lands first

    assert market.fills("r1") == [(99, 2, 3)]
    canceled = market.of("r1")[-1]
    assert isinstance(canceled, OrderCanceled)
    assert canceled.ts_event == 1_200
    assert market.venue.cancels == 1


# -- fees ------------------------------------------------------------------------


def test_fees_use_maker_and_taker_rates() -> None:
    market = Market(fees=FeeSchedule(maker_bps=2, taker_bps=Decimal("7.5")))
    market.snapshot([(6_170_000, 100_000)], [(6_173_763, 100_000)])

    market.order("t", BUY, 100_000)  # 1 BTC at 61737.63: 46.3032225 USDT at 7.5 bps
    market.order("m", BUY, 50_000, price=6_170_000)  # rests behind 1 BTC
    market.trade(6_170_000, 150_000, AggressorSide.SELL)  # 0.5 BTC at 61700: 6.17 USDT at 2 bps

    (taker,) = [e for e in market.of("t") if isinstance(e, OrderFilled)]
    (maker,) = [e for e in market.of("m") if isinstance(e, OrderFilled)]
    assert (taker.liquidity, taker.fee) == (Liquidity.TAKER, 4_630_322_250)
    assert (maker.liquidity, maker.fee) == (Liquidity.MAKER, 617_000_000)


def test_fees_round_against_the_trader() -> None:
    market = Market(fees=FeeSchedule(maker_bps=Decimal("-7.5"), taker_bps=Decimal("7.5")))
    market.snapshot([(99, 10)], [(100, 10)])
    # 0.00001 BTC at 1.00 USDT: 7.5 bps of it is 0.75 fee units.
    market.order("t", BUY, 1)
    market.order("m", SELL, 1, price=100)
    market.delta(asks=[(100, 1)])  # others leave ahead of us: queue 10 → 1
    market.trade(100, 2, AggressorSide.BUY)

    (taker,) = [e for e in market.of("t") if isinstance(e, OrderFilled)]
    (maker,) = [e for e in market.of("m") if isinstance(e, OrderFilled)]
    assert taker.fee == 1  # rounded up
    assert maker.fee == 0  # the rebate rounded towards zero


# -- rejects ---------------------------------------------------------------------


def test_rejects_when_book_invalid(market: Market) -> None:
    market.status(BookState.INVALID)
    market.order("x", BUY, 1)
    assert market.reason("x") == "book invalid"
    assert market.venue.rejects == 1

    market.status(BookState.VALID)
    market.order("y", BUY, 1)
    assert market.fills("y") == [(100, 1, 0)]


def test_resting_orders_do_not_fill_while_the_book_is_invalid(market: Market) -> None:
    market.order("r1", BUY, 1, price=99)
    market.status(BookState.INVALID)
    market.trade(90, 5, AggressorSide.SELL)
    assert market.fills("r1") == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"quantity": 0}, "quantity must be positive"),
        ({"quantity": -3}, "quantity must be positive"),
        ({"tif": TimeInForce.POST_ONLY, "price": 100}, "post-only order would take liquidity"),
        ({"symbol": "DOGEUSDT", "price": 1}, "unknown instrument"),
        ({"symbol": "ETHUSDT", "price": 100, "quantity": 10}, "no book for instrument"),
        ({"venue": "binance"}, "wrong venue 'binance'"),
    ],
)
def test_rejects_with_reason(market: Market, kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"quantity": 1, "price": 99} | kwargs
    quantity = args.pop("quantity")
    assert isinstance(quantity, int)
    market.order("x", BUY, quantity, **args)  # type: ignore[arg-type]
    assert market.reason("x") == reason
    assert [type(e) for e in market.events] == [OrderRejected]


def test_rejects_orders_off_the_price_and_size_grid(market: Market) -> None:
    market.snapshot([(1_000, 100)], [(1_005, 100)], symbol="ETHUSDT")
    market.order("tick", BUY, 10, price=1_001, symbol="ETHUSDT")
    market.order("lot", BUY, 15, price=1_000, symbol="ETHUSDT")
    market.order("ok", BUY, 20, price=1_000, symbol="ETHUSDT")
    assert market.reason("tick") == "price is not on the tick"
    assert market.reason("lot") == "quantity is not a multiple of the lot size"
    assert isinstance(market.of("ok")[0], OrderAccepted)


def test_rejects_limit_without_price_and_market_with_price(market: Market) -> None:
    market.venue.submit(OrderRequest("a", "paper", "BTCUSDT", BUY, OrderType.LIMIT, 1))
    market.venue.submit(OrderRequest("b", "paper", "BTCUSDT", BUY, OrderType.MARKET, 1, 100))
    assert market.reason("a") == "limit order without a price"
    assert market.reason("b") == "market order with a price"


def test_rejects_duplicate_client_order_id(market: Market) -> None:
    market.order("dup", BUY, 1, price=90)
    market.order("dup", BUY, 1, price=91)
    assert [type(e) for e in market.of("dup")] == [OrderAccepted, OrderRejected]
    assert market.reason("dup") == "duplicate client_order_id"


def test_cancel_of_unknown_or_finished_order_is_rejected(market: Market) -> None:
    market.cancel("nobody")
    market.order("done", BUY, 1)
    market.cancel("done")
    rejects = [e for e in market.events if isinstance(e, CancelRejected)]
    assert [(e.client_order_id, e.reason) for e in rejects] == [
        ("nobody", "unknown order"),
        ("done", "order is not working"),
    ]
    assert market.venue.cancel_rejects == 2


# -- bus, counters, persistence --------------------------------------------------


def test_bus_endpoints_take_orders_and_cancels(market: Market) -> None:
    market.bus.send(
        topics.PAPER_SUBMIT,
        OrderRequest("e1", "paper", "BTCUSDT", BUY, OrderType.LIMIT, 1, 90),
    )
    market.bus.send(topics.PAPER_CANCEL, CancelRequest("e1", "paper", "BTCUSDT"))
    assert [type(e) for e in market.of("e1")] == [OrderAccepted, OrderCanceled]


def test_close_releases_the_bus(market: Market) -> None:
    market.venue.close()
    assert topics.PAPER_SUBMIT not in market.bus.endpoints
    assert not market.bus.has_subscribers(topics.trade("binance", "BTCUSDT"))


def test_counters(market: Market) -> None:
    market.order("a", BUY, 4)
    market.order("b", BUY, 0)
    market.order("c", SELL, 1, price=120)
    market.cancel("c")
    assert market.venue.counters() == {
        "orders": 3,
        "accepted": 2,
        "fills": 2,
        "rejects": 1,
        "cancels": 1,
        "cancel_rejects": 0,
        "expired": 0,
    }


def _drive_after_restart(market: Market) -> None:
    market.trade(99, 5, AggressorSide.SELL, ts=2_000)
    market.delta(asks=[(98, 3)], bids=[(99, 0)], ts=2_100)
    market.order("late", BUY, 2)
    market.trade(97, 20, AggressorSide.SELL, ts=2_300)


def test_state_round_trips_and_the_restored_venue_carries_on_identically() -> None:
    original = Market(latency_ns=200)
    original.snapshot(BIDS, ASKS, ts=1_000)
    original.order("rest", BUY, 6, price=99)
    original.order("take", BUY, 2)
    original.trade(99, 1, AggressorSide.SELL, ts=1_200)  # both accepted; queue 4 → 3
    original.order("pending", SELL, 1, price=110)  # still in flight at the snapshot
    original.cancel("nothing")
    blob = original.venue.state()

    restored = Market(latency_ns=200)
    restored.snapshot(BIDS, ASKS, ts=1_200)
    restored.venue.restore(blob)
    assert restored.venue.state() == blob
    assert restored.venue.open_orders() == original.venue.open_orders()
    assert restored.venue.counters() == original.venue.counters()

    seen = len(original.events)
    for m in (original, restored):
        _drive_after_restart(m)
    assert restored.events == original.events[seen:]
    assert restored.venue.state() == original.venue.state()
    assert {e.client_order_id for e in restored.events if isinstance(e, OrderFilled)} == {
        "rest",
        "late",
    }
    assert isinstance(restored.of("pending")[0], OrderAccepted)


def test_restore_refuses_another_venues_state() -> None:
    bus = Bus()
    other = PaperVenue(bus, instruments={"BTCUSDT": BTC}, venue_name="other")
    venue = PaperVenue(bus, instruments={"BTCUSDT": BTC}, register_endpoints=False)
    with pytest.raises(ValueError, match="other"):
        venue.restore(other.state())
    with pytest.raises(msgspec.DecodeError):
        venue.restore(b"\x01garbage")


# -- properties ------------------------------------------------------------------

_price = st.integers(95, 105)
_side = st.sampled_from([BUY, SELL])
_op = st.one_of(
    st.tuples(st.just("delta"), st.booleans(), _price, st.integers(0, 8)),
    st.tuples(st.just("trade"), _price, st.integers(1, 10), st.sampled_from(list(AggressorSide))),
    st.tuples(
        st.just("order"),
        _side,
        st.integers(-1, 12),
        st.one_of(st.none(), _price),
        st.sampled_from(list(TimeInForce)),
    ),
    st.tuples(st.just("cancel"), st.integers(1, 20)),
)


@settings(max_examples=300, deadline=None)
@given(latency=st.sampled_from([0, 0, 3]), ops=st.lists(_op, max_size=60))
def test_fill_never_exceeds_quantity(latency: int, ops: list[tuple[object, ...]]) -> None:
    market = Market(latency_ns=latency)
    market.snapshot([(99, 4), (97, 2)], [(101, 3), (102, 5)], ts=0)
    requests: dict[str, OrderRequest] = {}
    # Taker fills per level since the level last changed must fit in the level.
    taken: dict[tuple[bool, int], int] = {}
    for ts, op in enumerate(ops, start=1):
        seen = len(market.events)
        if op[0] == "delta":
            _, is_bid, price, size = op
            assert isinstance(is_bid, bool) and isinstance(price, int) and isinstance(size, int)
            book = market.books["BTCUSDT"]
            levels = book.bids if is_bid else book.asks
            if levels.get(price, 0) != size:
                taken.pop((is_bid, price), None)
            if is_bid:
                market.delta(bids=[(price, size)], ts=ts)
            else:
                market.delta(asks=[(price, size)], ts=ts)
        elif op[0] == "trade":
            _, price, size, aggressor = op
            assert isinstance(price, int) and isinstance(size, int)
            assert isinstance(aggressor, AggressorSide)
            market.trade(price, size, aggressor, ts=ts)
        elif op[0] == "order":
            _, side, quantity, price, tif = op
            assert isinstance(side, OrderSide) and isinstance(quantity, int)
            assert price is None or isinstance(price, int)
            assert isinstance(tif, TimeInForce)
            requests[f"o{ts}"] = market.order(f"o{ts}", side, quantity, price, tif)
        else:
            market.cancel(f"o{op[1]}")
        book = market.books["BTCUSDT"]
        for event in market.events[seen:]:
            if isinstance(event, OrderFilled) and event.liquidity is Liquidity.TAKER:
                is_bid = requests[event.client_order_id].side is SELL
                key = (is_bid, event.price)
                taken[key] = taken.get(key, 0) + event.quantity
                levels = book.bids if is_bid else book.asks
                assert taken[key] <= levels.get(event.price, 0)

    open_leaves = {o.request.client_order_id: o.leaves for o in market.venue.open_orders()}
    for cid, request in requests.items():
        events = [e for e in market.of(cid) if not isinstance(e, CancelRejected)]
        if not events:
            assert market.venue.pending > 0  # still in flight
            continue
        if isinstance(events[0], OrderRejected):
            assert len(events) == 1
            continue
        assert isinstance(events[0], OrderAccepted)
        filled = 0
        for position, event in enumerate(events[1:], start=1):
            if isinstance(event, OrderFilled):
                assert event.quantity > 0
                filled += event.quantity
                assert filled <= request.quantity
                assert event.leaves_quantity == request.quantity - filled
                if request.price is not None:
                    if request.side is BUY:
                        assert event.price <= request.price
                    else:
                        assert event.price >= request.price
                if event.leaves_quantity == 0:
                    assert position == len(events) - 1
            else:
                assert isinstance(event, OrderCanceled | OrderExpired)
                assert position == len(events) - 1
        last = events[-1]
        done = isinstance(last, OrderCanceled | OrderExpired) or (
            isinstance(last, OrderFilled) and last.leaves_quantity == 0
        )
        if done:
            assert cid not in open_leaves
        else:
            assert open_leaves[cid] == request.quantity - filled
