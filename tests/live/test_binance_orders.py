"""Live Binance order entry against the exchange emulator, through the kernel's order path.

Every order here goes strategy-side → risk engine → journal → the live venue
→ signed REST on a loopback emulator that matches it against the replayed
book; what the venue answers (REST, the user-data stream, reconciliation)
comes back through the order manager into orders and positions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from order_stack import TradingStack, until

from kernel.adapters.base import RawFrame
from kernel.adapters.binance.feed import BinanceFeed
from kernel.bus import Bus, UnknownEndpointError
from kernel.emulator import Emulator
from kernel.journal import Journal
from kernel.live import Backoff
from kernel.live.binance import BinanceMarketData
from kernel.live.binance_orders import (
    SPOT,
    USDM,
    BinanceOrderEntry,
    BinanceRest,
    ResponseType,
    commission_in_quote,
    rejection_reason,
    venue_client_id,
)
from kernel.live.credentials import VenueCredentials, load_credentials
from kernel.orders import Order, OrderManager, OrderStatus
from kernel.orders.manager import OrderVenue
from kernel.paper import PaperVenue
from kernel.risk import RiskConfig, RiskEngine
from kernel.trading import MarketData, TradingContext, VenueMap
from kernel.trading.clock import MarketClock
from tradekernel_sdk.fixedpoint import to_fixed
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.types import BookState, Instrument

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "binance_spot"
BTC = BUNDLED / "btcusdt_20240808_head12000.gz"
SYMBOL = "BTCUSDT"
USDT = 10**8  # one quote unit at the spot wire precision
QUANTITY = 100_000  # 0.001 BTC


class Keys:
    """Fresh credentials for one test: the emulator accepts them, and no log line may show them."""

    def __init__(self) -> None:
        self.key = "key-" + secrets.token_hex(20)
        self.secret = "secret-" + secrets.token_hex(24)
        environ = {
            f"TRADEKERNEL_BINANCE_{purpose}_{field}": value
            for purpose in ("READ", "TRADE")
            for field, value in (("KEY", self.key), ("SECRET", self.secret))
        }
        self.credentials: VenueCredentials = load_credentials("binance", environ=environ)


@pytest.fixture
def keys(caplog: pytest.LogCaptureFixture) -> Iterator[Keys]:
    """Every test's keys; afterwards no captured log line may contain a key, secret or signature."""
    caplog.set_level(logging.DEBUG)
    made = Keys()
    yield made
    assert_no_secrets_logged(caplog, made)


def assert_no_secrets_logged(caplog: pytest.LogCaptureFixture, keys: Keys) -> None:
    hex_digest = re.compile(r"\b[0-9a-f]{64}\b")
    # After the yield, caplog.records holds only the teardown's lines: read every phase.
    phases = ("setup", "call", "teardown")
    records = [record for phase in phases for record in caplog.get_records(phase)]
    for record in records or caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        assert keys.key not in line
        assert keys.secret not in line
        assert not hex_digest.search(line), f"a signature-like value was logged: {line!r}"


def fast_backoff(base_s: float = 0.05) -> Backoff:
    return Backoff(base_s=base_s, cap_s=base_s, rng=random.Random(0))


class LiveKernel(TradingStack):
    """The kernel's trading path on a live connection: feed, risk, journal, orders, venue."""

    def __init__(
        self,
        emulator: Emulator,
        keys: Keys,
        journal_path: Path,
        *,
        response_type: ResponseType = "FULL",
        backoff: Backoff | None = None,
        keepalive_s: float = 1800.0,
        lookup_delay_s: float = 0.05,
    ) -> None:
        super().__init__("binance", SYMBOL, journal_path, usdt=USDT, quantity=QUANTITY)
        feed = BinanceFeed(self.bus, "spot")
        self.trade_on(
            feed,
            BinanceMarketData(
                feed,
                [SYMBOL],
                ws_url=emulator.ws_url,
                rest_url=emulator.http_url,
                backoff=fast_backoff(),
            ),
        )
        self.venue = BinanceOrderEntry(
            self.bus,
            credentials=keys.credentials,
            instruments=feed.instrument,
            rest_url=emulator.http_url,
            ws_url=emulator.ws_url,
            response_type=response_type,
            backoff=backoff or fast_backoff(),
            keepalive_s=keepalive_s,
            lookup_delay_s=lookup_delay_s,
            orders=self.orders,
        )
        self.route_to(self.venue)


def run(coroutine: Any) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


async def signed_call(emulator: Emulator, keys: Keys, method: str, path: str, **params: str) -> Any:
    """A second client of the same account (another process, or a person at the web page)."""
    rest = BinanceRest(SPOT, keys.credentials, rest_url=emulator.http_url)
    await rest.open()
    try:
        await rest.sync_clock()
        return await rest.call(
            method, path, params, keys=keys.credentials.for_trading(), signed=True
        )
    finally:
        await rest.close()


def emulator_order(emulator: Emulator, client_order_id: str) -> Any:
    order = emulator.engine.find(SYMBOL, client_order_id=client_order_id)
    assert order is not None, f"the emulator never received {client_order_id}"
    return order


def assert_fills_match_the_venue(kernel: LiveKernel, emulator: Emulator, order: Order) -> None:
    """The kernel's fills are exactly the venue's: quantity, notional, fees, trade ids."""
    venue_order = emulator_order(emulator, order.client_order_id)
    assert order.filled_quantity == venue_order.executed
    assert order.filled_notional == venue_order.quote_executed
    assert order.fees == venue_order.fees
    assert order.fill_ids == {str(fill.trade_id) for fill in venue_order.fills}


# -- specifications ---------------------------------------------------------------


def test_the_paper_venue_and_binance_are_both_order_venues_on_the_bus(keys: Keys) -> None:
    bus = Bus()
    binance = BinanceOrderEntry(bus, credentials=keys.credentials, instruments=lambda _: None)
    venues: list[OrderVenue] = [PaperVenue(bus, instruments={}), binance]  # checked by mypy
    assert bus.endpoints == ["binance.cancel", "binance.submit", "paper.cancel", "paper.submit"]
    # Not started: an order is refused at once, with the reason, and nothing is sent.
    rejected: list[Any] = []
    bus.subscribe("events.order.binance", rejected.append)
    binance.submit(OrderRequest("early", "binance", SYMBOL, OrderSide.BUY, OrderType.MARKET, 1))
    assert [event.reason for event in rejected] == ["the binance venue is not started"]
    for venue in venues:
        venue.close()
    assert bus.endpoints == []


def test_an_order_passes_risk_and_the_journal_then_fills_on_binance_and_reaches_positions(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.marketable_buy()
            assert order.status is OrderStatus.PENDING_NEW  # routed, not yet answered
            await until(lambda: order.status is OrderStatus.FILLED)
            # The same trades also arrive on the user-data stream: counted once.
            await until(lambda: kernel.venue.duplicate_fills >= len(order.fill_ids))
            assert kernel.orders.duplicate_fills == 0
            assert_fills_match_the_venue(kernel, emulator, order)
            assert kernel.orders.portfolio.quantity("binance", SYMBOL) == QUANTITY
            assert (
                kernel.venue.rest.order_counts["X-MBX-ORDER-COUNT-10S"].used() >= 1
            )  # the venue's order count, echoed
            kinds = kernel.journal_kinds()
            assert kinds.index("submit") < kinds.index("event")  # on record before it acted
            assert kinds.count("event") == 1 + len(order.fill_ids)  # accepted, then each fill
            await kernel.stop()

    run(scenario())


def test_a_resting_order_is_cancelled_at_the_venue(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.NEW)
            assert emulator_order(emulator, order.client_order_id).open
            assert kernel.orders.cancel(order.client_order_id)
            assert order.status is OrderStatus.PENDING_CANCEL
            await until(lambda: order.status is OrderStatus.CANCELED)
            assert emulator_order(emulator, order.client_order_id).status == "CANCELED"
            assert order.filled_quantity == 0
            assert kernel.orders.portfolio.quantity("binance", SYMBOL) == 0
            await kernel.stop()

    run(scenario())


def test_a_client_order_id_binance_would_refuse_is_sent_as_a_digest_and_mapped_back(
    tmp_path: Path, keys: Keys
) -> None:
    assert venue_client_id("market_maker_btc-17") == "market_maker_btc-17"
    long_id = "order book imbalance, BTCUSDT, second account-000042"
    digest = venue_client_id(long_id)
    assert digest == venue_client_id(long_id)  # the same in every process
    assert re.fullmatch(r"tk-[0-9a-f]{32}", digest)

    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.resting_buy(client_order_id=long_id)
            await until(lambda: order.status is OrderStatus.NEW)
            assert emulator_order(emulator, digest).open
            assert kernel.orders.cancel(long_id)
            await until(lambda: order.status is OrderStatus.CANCELED)
            report = await kernel.venue.reconcile()
            assert report.unknown_at_kernel == []
            await kernel.stop()

    run(scenario())


def test_venue_rejections_reach_the_order_manager_with_the_venue_reason(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            emulator.faults.reject_orders(-1013, "Filter failure: LOT_SIZE")
            filtered = kernel.resting_buy()
            await until(lambda: filtered.status is OrderStatus.REJECTED)
            assert filtered.reason == "binance -1013 (filter failure): Filter failure: LOT_SIZE"
            # A real refusal, not a scripted one: selling more BTC than the account holds.
            too_big = kernel.submit(OrderSide.SELL, kernel.best(OrderSide.BUY), 20 * 10**8)
            await until(lambda: too_big.status is OrderStatus.REJECTED)
            assert too_big.reason == rejection_reason(
                -2010, "Account has insufficient balance for requested action."
            )
            assert "new order rejected" in too_big.reason
            assert kernel.orders.portfolio.quantity("binance", SYMBOL) == 0
            assert emulator.stats.orders_rejected == 2
            await kernel.stop()

    run(scenario())


def test_an_answer_with_unknown_execution_status_is_looked_up_not_guessed(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            requests_before = emulator.stats.rest_requests
            emulator.faults.reject_orders(
                -1007, "Timeout waiting for response from backend server. Send status unknown."
            )
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.EXPIRED)
            # Not rejected on the venue's word: the order was looked up, twice, a little
            # later each time (it might still have been on its way), and it does not exist.
            assert order.reason == "the venue does not know the order"
            lookups = emulator.stats.rest_requests - requests_before - 1  # less the order
            assert lookups == 2
            assert emulator.engine.find(SYMBOL, client_order_id=order.client_order_id) is None
            assert emulator.stats.orders == 1  # and it was not sent again
            await kernel.stop()

    run(scenario())


def test_a_clock_offset_is_measured_at_start_and_corrected_after_a_timestamp_refusal(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            emulator.faults.clock_offset_ms(30_000)  # the venue's clock runs 30 s ahead
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            assert abs(kernel.venue.rest.clock.offset_ms - 30_000) < 1000
            first = kernel.marketable_buy()
            await until(lambda: first.status is OrderStatus.FILLED)
            assert emulator.stats.timestamp_rejections == 0

            emulator.faults.clock_offset_ms(-20_000)  # the venue's clock jumps 50 s back
            second = kernel.marketable_buy()
            await until(lambda: second.status is OrderStatus.FILLED)
            assert emulator.stats.timestamp_rejections == 1  # refused once, re-measured, resent
            assert kernel.venue.rest.timestamp_retries == 1
            assert abs(kernel.venue.rest.clock.offset_ms + 20_000) < 1000
            assert kernel.orders.portfolio.quantity("binance", SYMBOL) == 2 * QUANTITY
            await kernel.stop()

    run(scenario())


def test_a_rate_limited_order_waits_for_retry_after_and_is_sent_once_more(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            emulator.faults.rate_limit(429, retry_after=1, match="/api/v3/order")
            sent = time.monotonic()
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.FILLED)
            assert time.monotonic() - sent >= 0.9  # nothing went out before Retry-After
            assert kernel.venue.rest.rate_limited == 1
            assert emulator.stats.rate_limited == 1
            assert emulator.stats.orders == 1  # the refused request never reached the engine
            await kernel.stop()

    run(scenario())


def test_a_fill_missed_while_the_user_stream_was_down_is_found_by_reconciliation(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            # ACK answers carry no fills: only the stream or reconciliation can tell of them.
            kernel = LiveKernel(
                emulator,
                keys,
                tmp_path / "journal.tkj",
                response_type="ACK",
                backoff=fast_backoff(1.0),
            )
            await kernel.start()
            assert kernel.venue.listen_keys == 1
            # The listen key is closed under the venue (as when it expires): the stream ends.
            async with aiohttp.ClientSession() as http:
                url = f"{emulator.http_url}/api/v3/userDataStream"
                headers = {"X-MBX-APIKEY": keys.key}
                async with http.post(url, headers=headers) as response:
                    listen_key = (await response.json())["listenKey"]  # the account's active key
                async with http.delete(
                    f"{url}?listenKey={listen_key}", headers=headers
                ) as response:
                    assert response.status == 200
            await until(lambda: not kernel.venue.stream_connected.is_set())
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.NEW)
            assert emulator_order(emulator, order.client_order_id).status == "FILLED"
            assert order.filled_quantity == 0  # the kernel has not heard yet
            await until(lambda: order.status is OrderStatus.FILLED)
            await until(lambda: len(kernel.venue.reconciliations) == 2)  # at start, at reconnect
            assert kernel.venue.listen_keys == 2  # a new key, a new connection
            assert kernel.venue.stream_connects == 2
            latest = kernel.venue.reconciliations[-1]
            assert latest.checked == 1 and latest.fills == 1 and latest.closed == 1
            assert_fills_match_the_venue(kernel, emulator, order)
            assert kernel.orders.portfolio.quantity("binance", SYMBOL) == QUANTITY
            await kernel.stop()

    run(scenario())


def test_the_listen_key_is_kept_alive_and_a_new_one_taken_when_the_venue_forgets_it(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj", keepalive_s=0.1)
            await kernel.start()
            await until(lambda: kernel.venue.keepalives >= 3)
            assert kernel.venue.listen_keys == 1
            assert kernel.venue.stream_connects == 1
            # The venue forgets the key (it expired): the next keepalive is refused with -1125.
            # No emulator fault expires keys; forgetting them is what expiry looks like.
            emulator._front.listen_keys.clear()  # type: ignore[union-attr]
            await until(lambda: kernel.venue.listen_keys == 2)
            await until(kernel.venue.stream_connected.is_set)
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.FILLED)
            await kernel.stop()

    run(scenario())


def test_a_trade_made_by_hand_shows_as_a_balance_the_journal_does_not_explain(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.FILLED)
            own = await kernel.venue.reconcile()
            assert own.balances["BTC"] == ("10.00100000", "0.00000000")
            assert own.balance_drift == {}  # the kernel's own fill explains the change
            price = kernel.best(OrderSide.BUY) + 1000 * USDT
            by_hand = await signed_call(
                emulator,
                keys,
                "POST",
                "/api/v3/order",
                symbol=SYMBOL,
                side="BUY",
                type="LIMIT",
                timeInForce="IOC",
                quantity="0.002",
                price=f"{price // USDT}",
                newClientOrderId="bought-by-hand",
            )
            assert by_hand["executedQty"] == "0.00200000"
            after = await kernel.venue.reconcile()
            assert after.balance_drift == {"BTC": 200_000}  # 0.002 BTC nobody journaled
            assert "bought-by-hand" not in kernel.orders.orders
            await kernel.stop()

    run(scenario())


def test_a_restart_from_the_journal_reconciles_and_neither_loses_nor_duplicates_an_order(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            journal = tmp_path / "journal.tkj"
            first = LiveKernel(emulator, keys, journal)
            await first.start()
            filled = first.marketable_buy()
            resting = first.resting_buy()
            cancelled_while_down = first.resting_buy()
            await until(lambda: filled.status is OrderStatus.FILLED)
            await until(lambda: resting.status is OrderStatus.NEW)
            await until(lambda: cancelled_while_down.status is OrderStatus.NEW)
            # The process dies between journaling an order and sending it.
            first.venue.close()
            with pytest.raises(UnknownEndpointError):
                first.resting_buy()
            never_sent = next(
                o for o in first.orders.orders.values() if o.status is OrderStatus.PENDING_NEW
            )
            await first.stop()

            # While the kernel is down: one of its orders is cancelled, and someone else trades.
            await signed_call(
                emulator,
                keys,
                "DELETE",
                "/api/v3/order",
                symbol=SYMBOL,
                origClientOrderId=cancelled_while_down.client_order_id,
            )
            stranger = await signed_call(
                emulator,
                keys,
                "POST",
                "/api/v3/order",
                symbol=SYMBOL,
                side="BUY",
                type="LIMIT",
                timeInForce="GTC",
                quantity="0.001",
                price="1000",
                newClientOrderId="placed-by-hand",
            )
            assert stranger["status"] == "NEW"
            orders_at_the_venue = emulator.stats.orders

            second = LiveKernel(emulator, keys, journal)
            assert second.recovered > 0
            await second.start()
            orders = second.orders.orders
            assert orders[filled.client_order_id].status is OrderStatus.FILLED
            assert orders[resting.client_order_id].status is OrderStatus.NEW
            assert orders[cancelled_while_down.client_order_id].status is OrderStatus.CANCELED
            lost = orders[never_sent.client_order_id]
            assert lost.status is OrderStatus.EXPIRED
            assert lost.reason == "the venue does not know the order"
            assert "placed-by-hand" not in orders  # reported, never adopted
            assert second.venue.unknown_orders == {"placed-by-hand"}
            report = second.venue.reconciliations[0]
            assert (report.checked, report.closed, report.lost) == (3, 1, 1)
            assert report.unknown_at_kernel == ["placed-by-hand"]
            assert report.balances["BTC"][0] == "10.00100000"  # 10 BTC + the one fill
            # Nothing placed twice, nothing counted twice.
            assert emulator.stats.orders == orders_at_the_venue
            assert second.orders.portfolio.quantity("binance", SYMBOL) == QUANTITY
            assert_fills_match_the_venue(second, emulator, orders[filled.client_order_id])
            # The restarted kernel keeps trading: the resting order can still be cancelled.
            assert second.orders.cancel(resting.client_order_id)
            await until(lambda: orders[resting.client_order_id].status is OrderStatus.CANCELED)
            await second.stop()

    run(scenario())


def test_secrets_never_reach_a_log_line_even_when_logged_on_purpose(
    tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """The credentials' objects print as ``***``; the scan in the fixture covers every test."""
    api_key = keys.credentials.for_trading()
    logging.getLogger("tradekernel.test").warning("keys %s %r", api_key.key, api_key.secret)
    assert "***" in caplog.records[-1].getMessage()
    assert_no_secrets_logged(caplog, keys)


def test_commission_converts_exactly_into_quote_fee_units() -> None:
    btc = Instrument("binance", SYMBOL, 8, 8, 1_000_000, 1_000, base="BTC", quote="USDT")
    price = to_fixed("61737.63", 8)
    assert commission_in_quote("0.06173763", "USDT", price, btc) == 6_173_763
    # 0.00000100 BTC at 61737.63 is 0.0617376300 USDT exactly.
    assert commission_in_quote("0.00000100", "BTC", price, btc) == 6_173_763
    # 0.00000001 BTC is 0.0006173763 USDT: rounded up to the fee precision.
    assert commission_in_quote("0.00000001", "BTC", price, btc) == 61_738
    assert commission_in_quote("0.001", "BNB", price, btc) is None
    assert FEE_PRECISION == 8


# -- USD-M futures ------------------------------------------------------------------
#
# The emulator serves USD-M market data only, so USD-M orders are proven against a
# loopback server that answers as Binance's USD-M pages describe (new, cancel and query
# order, open orders, user trades, position risk, listen key, ORDER_TRADE_UPDATE), with
# signed requests checked and fills scripted by the test.

USDM_BTC = Instrument("binance-usdm", SYMBOL, 2, 3, 10, 1, base="BTC", quote="USDT")


class UsdmOrderServer:
    """A USD-M account on loopback: orders rest until the test fills or cancels them."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.listen_key = secrets.token_urlsafe(48)
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.position = 0  # signed, at the instrument's size precision
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.sockets: set[web.WebSocketResponse] = set()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_get("/fapi/v1/time", self._time)
        app.router.add_post("/fapi/v1/listenKey", self._listen_key)
        app.router.add_put("/fapi/v1/listenKey", self._listen_key)
        app.router.add_get("/ws/{key}", self._stream)
        app.router.add_post("/fapi/v1/order", self._signed(self._new_order))
        app.router.add_delete("/fapi/v1/order", self._signed(self._cancel))
        app.router.add_get("/fapi/v1/order", self._signed(self._query))
        app.router.add_get("/fapi/v1/openOrders", self._signed(self._open_orders))
        app.router.add_get("/fapi/v1/userTrades", self._signed(self._user_trades))
        app.router.add_get("/fapi/v2/positionRisk", self._signed(self._position_risk))
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def __aenter__(self) -> UsdmOrderServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for socket in list(self.sockets):
            await socket.close()
        await self._runner.cleanup()

    # -- what the test scripts ------------------------------------------------------

    async def fill(self, client_order_id: str, price: str, quantity: str, *, push: bool) -> None:
        """Trade part of an order as maker; tell the stream only when ``push``."""
        order = self.orders[client_order_id]
        qty = to_fixed(quantity, USDM_BTC.size_precision)
        executed = to_fixed(order["executedQty"], USDM_BTC.size_precision) + qty
        order["executedQty"] = f"{Decimal(executed) / 1000:.3f}"
        order["status"] = (
            "FILLED" if order["executedQty"] == order["origQty"] else "PARTIALLY_FILLED"
        )
        self.position += qty if order["side"] == "BUY" else -qty
        commission = Decimal(price) * Decimal(quantity) * Decimal("0.0002")  # maker 0.02%
        trade = {
            "symbol": SYMBOL,
            "id": 7000 + len(self.trades),
            "orderId": order["orderId"],
            "side": order["side"],
            "price": price,
            "qty": quantity,
            "realizedPnl": "0",
            "quoteQty": str(Decimal(price) * Decimal(quantity)),
            "commission": f"{commission:.8f}",
            "commissionAsset": "USDT",
            "time": int(time.time() * 1000),
            "positionSide": "BOTH",
            "buyer": order["side"] == "BUY",
            "maker": True,
        }
        self.trades.append(trade)
        if push:
            await self._push(order, "TRADE", trade)

    async def push_raw(self, text: str) -> None:
        for socket in list(self.sockets):
            await socket.send_str(text)

    async def drop_streams(self) -> None:
        for socket in list(self.sockets):
            await socket.close()

    # -- the wire ---------------------------------------------------------------------

    def _signed(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            assert request.headers["X-MBX-APIKEY"] == self.keys.key
            query = request.raw_path.partition("?")[2]
            unsigned, _, signature = query.rpartition("&signature=")
            expected = hmac.new(
                self.keys.secret.encode(), unsigned.encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(expected, signature):
                return web.json_response(
                    {"code": -1022, "msg": "Signature is not valid."}, status=400
                )
            params = dict(parse_qsl(unsigned))
            if abs(int(params["timestamp"]) - int(time.time() * 1000)) > int(params["recvWindow"]):
                return web.json_response(
                    {"code": -1021, "msg": "Timestamp outside recvWindow."}, status=400
                )
            self.requests.append((request.method, request.path, params))
            response: web.StreamResponse = await handler(params)
            return response

        return checked

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _listen_key(self, request: web.Request) -> web.Response:
        assert request.headers["X-MBX-APIKEY"] == self.keys.key
        assert not request.query  # the futures keepalive takes no parameter
        return web.json_response({"listenKey": self.listen_key})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        assert request.match_info["key"] == self.listen_key
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.add(socket)
        try:
            async for _ in socket:
                pass
        finally:
            self.sockets.discard(socket)
        return socket

    async def _push(
        self, order: dict[str, Any], execution: str, trade: dict[str, Any] | None
    ) -> None:
        now = int(time.time() * 1000)
        event = {
            "e": "ORDER_TRADE_UPDATE",
            "E": now,
            "T": now,
            "o": {
                "s": SYMBOL,
                "c": order["clientOrderId"],
                "S": order["side"],
                "o": order["type"],
                "f": order["timeInForce"],
                "q": order["origQty"],
                "p": order["price"],
                "ap": "0",
                "sp": "0",
                "x": execution,
                "X": order["status"],
                "i": order["orderId"],
                "l": trade["qty"] if trade else "0",
                "z": order["executedQty"],
                "L": trade["price"] if trade else "0",
                "N": "USDT",
                "n": trade["commission"] if trade else "0",
                "T": now,
                "t": trade["id"] if trade else 0,
                "b": "0",
                "a": "0",
                "m": bool(trade and trade["maker"]),
                "R": False,
                "wt": "CONTRACT_PRICE",
                "ot": order["type"],
                "ps": "BOTH",
                "cp": False,
                "rp": "0",
            },
        }
        for socket in list(self.sockets):
            await socket.send_str(json.dumps(event))

    async def _new_order(self, params: dict[str, str]) -> web.Response:
        if params.get("newOrderRespType") not in ("ACK", "RESULT"):
            return web.json_response(
                {"code": -1116, "msg": "Invalid newOrderRespType."}, status=400
            )
        order: dict[str, Any] = {
            "orderId": next(self._ids),
            "symbol": SYMBOL,
            "status": "NEW",
            "clientOrderId": params["newClientOrderId"],
            "price": params.get("price", "0"),
            "avgPrice": "0.00",
            "origQty": f"{Decimal(params['quantity']):.3f}",  # written as the venue writes it
            "executedQty": "0.000",
            "cumQuote": "0",
            "timeInForce": params.get("timeInForce", "GTC"),
            "type": params["type"],
            "side": params["side"],
            "updateTime": int(time.time() * 1000),
        }
        self.orders[order["clientOrderId"]] = order
        await self._push(order, "NEW", None)
        return web.json_response(order)

    async def _cancel(self, params: dict[str, str]) -> web.Response:
        order = self.orders.get(params["origClientOrderId"])
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
        order["status"] = "CANCELED"
        await self._push(order, "CANCELED", None)
        return web.json_response(order)

    async def _query(self, params: dict[str, str]) -> web.Response:
        order = self.orders.get(params["origClientOrderId"])
        if order is None:
            return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)
        return web.json_response(order)

    async def _open_orders(self, params: dict[str, str]) -> web.Response:
        open_orders = [
            o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]
        return web.json_response(open_orders)

    async def _user_trades(self, params: dict[str, str]) -> web.Response:
        wanted = int(params["orderId"]) if "orderId" in params else None
        return web.json_response([t for t in self.trades if wanted in (None, t["orderId"])])

    async def _position_risk(self, params: dict[str, str]) -> web.Response:
        amount = f"{Decimal(self.position) / 1000:.3f}"
        return web.json_response(
            [{"symbol": SYMBOL, "positionAmt": amount, "entryPrice": "0", "positionSide": "BOTH"}]
        )


class UsdmKernel:
    """The trading path on USD-M: a futures feed with a valid book, risk, journal, orders, venue."""

    def __init__(self, server: UsdmOrderServer, keys: Keys, journal_path: Path) -> None:
        self.bus = Bus()
        self.clock = MarketClock(self.bus)
        self.feed = BinanceFeed(self.bus, "usdm", instruments={SYMBOL: USDM_BTC})
        market = MarketData(
            books={"binance-usdm": self.feed.book},
            states={"binance-usdm": self.feed.book_state},
            instruments={"binance-usdm": self.feed.instrument},
        )
        routes = VenueMap({"binance-usdm": "binance-usdm"})
        self.context = TradingContext(market=market, venues=routes)
        self.risk = RiskEngine(RiskConfig(), self.context, clock=self.clock, bus=self.bus)
        self.journal = Journal.open(journal_path, fsync="batch")
        self.orders = OrderManager(
            self.bus,
            journal=self.journal,
            risk=self.risk,
            instruments=self.context.instrument,
            clock=self.clock,
            venues=("binance-usdm",),
        )
        self.context.attach(self.orders)
        self.venue = BinanceOrderEntry(
            self.bus,
            credentials=keys.credentials,
            instruments=self.feed.instrument,
            api=USDM,
            venue_name="binance-usdm",
            rest_url=server.url,
            ws_url=server.url.replace("http", "ws"),
            backoff=fast_backoff(),
            orders=self.orders,
        )
        self._ids = 0

    def load_book(self) -> None:
        """A depth snapshot and the diff that bridges it, as the futures sync rule wants."""
        snapshot = {
            "lastUpdateId": 100,
            "E": 1,
            "T": 1,
            "bids": [["60000.00", "5.000"]],
            "asks": [["60000.10", "5.000"]],
        }
        diff = {
            "stream": "btcusdt@depth@0ms",
            "data": {
                "e": "depthUpdate",
                "E": 2,
                "T": 2,
                "s": SYMBOL,
                "U": 95,
                "u": 105,
                "pu": 94,
                "b": [["60000.00", "4.000"]],
                "a": [],
            },
        }
        now = time.time_ns()
        self.feed.on_frame(RawFrame(now, json.dumps(snapshot).encode(), "rest:depth:BTCUSDT"))
        self.feed.on_frame(RawFrame(now + 1, json.dumps(diff).encode(), "ws"))
        assert self.feed.book_state(SYMBOL) is BookState.VALID

    async def start(self) -> None:
        self.load_book()
        await self.venue.start()
        await until(lambda: len(self.venue.reconciliations) >= 1)

    async def stop(self) -> None:
        await self.venue.stop()
        self.orders.close()
        self.journal.close()

    def post_only_buy(self, price: str, quantity: str) -> Order:
        self._ids += 1
        request = OrderRequest(
            f"u{time.monotonic_ns()}-{self._ids}",
            "binance-usdm",
            SYMBOL,
            OrderSide.BUY,
            OrderType.LIMIT,
            to_fixed(quantity, 3),
            to_fixed(price, 2),
            TimeInForce.POST_ONLY,
            self.clock(),
        )
        return self.orders.submit(request, strategy="test")


def test_usdm_a_post_only_order_fills_from_the_stream_and_the_position_matches_the_venue(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with UsdmOrderServer(keys) as server:
            kernel = UsdmKernel(server, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.post_only_buy("59990.00", "0.010")
            await until(lambda: order.status is OrderStatus.NEW)
            _, _, sent = next(r for r in server.requests if r[1] == "/fapi/v1/order")
            assert (sent["type"], sent["timeInForce"]) == ("LIMIT", "GTX")  # post-only
            assert sent["newOrderRespType"] == "RESULT"  # futures have no FULL answers
            assert (sent["quantity"], sent["price"]) == ("0.01", "59990")
            await server.fill(order.client_order_id, "59990.00", "0.004", push=True)
            await until(lambda: order.status is OrderStatus.PARTIALLY_FILLED)
            # Bad messages are logged and skipped; the stream and the order carry on.
            bad_price = {"c": order.client_order_id, "x": "TRADE", "L": "1e3"}
            for garbage in (
                '{"e":"ORDER_TRADE_UPDATE","E":1}',  # no order
                "not json",
                json.dumps({"e": "ORDER_TRADE_UPDATE", "o": bad_price}),  # not a decimal
            ):
                await server.push_raw(garbage)
            await server.fill(order.client_order_id, "59990.00", "0.006", push=True)
            await until(lambda: order.status is OrderStatus.FILLED)
            # Exact: 0.01 BTC at 59990.00, maker fee 0.02% = 0.11998 USDT.
            assert order.filled_notional == 5999000 * 10
            assert order.fees == to_fixed("0.11998", FEE_PRECISION)
            assert kernel.venue.stream_connects == 1
            assert kernel.orders.portfolio.quantity("binance-usdm", SYMBOL) == 10
            report = await kernel.venue.reconcile()
            assert report.positions == {SYMBOL: 10}
            assert report.position_differences == {}
            await kernel.stop()

    run(scenario())


def test_usdm_a_fill_the_stream_missed_is_found_by_reconciliation_after_a_reconnect(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with UsdmOrderServer(keys) as server:
            kernel = UsdmKernel(server, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.post_only_buy("59990.00", "0.010")
            await until(lambda: order.status is OrderStatus.NEW)
            await server.fill(order.client_order_id, "59990.00", "0.003", push=False)
            await asyncio.sleep(0.1)
            assert order.filled_quantity == 0  # the stream never said
            await server.drop_streams()
            await until(lambda: len(kernel.venue.reconciliations) >= 2)
            await until(lambda: order.status is OrderStatus.PARTIALLY_FILLED)
            assert order.filled_quantity == 3
            assert kernel.orders.portfolio.quantity("binance-usdm", SYMBOL) == 3
            assert kernel.venue.reconciliations[-1].position_differences == {}
            # The cancel goes out and the stream closes the order.
            assert kernel.orders.cancel(order.client_order_id)
            await until(lambda: order.status is OrderStatus.CANCELED)
            await kernel.stop()

    run(scenario())
