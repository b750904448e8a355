"""Live OKX order entry against the exchange emulator, through the kernel's order path.

Every order here goes strategy-side → risk engine → journal → the live venue
→ signed REST on a loopback emulator that matches it against the replayed OKX
book; what the venue says (REST answers, the private ``orders`` channel,
reconciliation) comes back through the order manager into orders and
positions.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from order_stack import TradingStack, until

from kernel.adapters.okx import OkxFeed, load_okx_instruments
from kernel.bus import Bus, UnknownEndpointError, topics
from kernel.emulator import Emulator
from kernel.emulator.okx import OkxMarket
from kernel.live import Backoff
from kernel.live.credentials import VenueCredentials, load_credentials
from kernel.live.okx import OkxMarketData
from kernel.live.okx_orders import (
    ENDPOINT_LIMITS,
    OkxOrderEntry,
    OkxRest,
    RateLimits,
    fee_in_quote,
    rejection_reason,
    sign,
    venue_client_id,
)
from kernel.orders import Order, OrderStatus
from kernel.orders.manager import OrderVenue
from kernel.paper import PaperVenue
from tradekernel_sdk.fixedpoint import to_fixed
from tradekernel_sdk.orders import (
    CancelRejected,
    OrderRequest,
    OrderSide,
    OrderType,
)
from tradekernel_sdk.types import Instrument

BUNDLED = Path(__file__).resolve().parents[2] / "kernel" / "data" / "okx_v5"
INSTRUMENTS = BUNDLED / "OKX.0.gz"
RECORDING = [INSTRUMENTS, BUNDLED / "OKX.ws.1.0.gz"]
SYMBOL = "BTC-USDT"
USDT = 10  # one quote unit at BTC-USDT's price precision (0.1)
QUANTITY = 100_000  # 0.001 BTC


class Keys:
    """Fresh credentials for one test: the emulator accepts them, and no log line may show them."""

    def __init__(self) -> None:
        self.key = "key-" + secrets.token_hex(16)
        self.secret = "secret-" + secrets.token_hex(24)
        self.passphrase = "pass-" + secrets.token_hex(12)
        environ = {
            f"TRADEKERNEL_OKX_{purpose}_{name}": value
            for purpose in ("READ", "TRADE")
            for name, value in (
                ("KEY", self.key),
                ("SECRET", self.secret),
                ("PASSPHRASE", self.passphrase),
            )
        }
        self.credentials: VenueCredentials = load_credentials("okx", environ=environ)

    def emulator(self, **options: Any) -> Emulator:
        return Emulator(
            "okx",
            RECORDING,
            api_key=self.key,
            api_secret=self.secret,
            passphrase=self.passphrase,
            **options,
        )


@pytest.fixture
def keys(caplog: pytest.LogCaptureFixture) -> Iterator[Keys]:
    """Every test's keys; afterwards no captured log line may hold a key, secret or signature."""
    caplog.set_level(logging.DEBUG)
    made = Keys()
    yield made
    assert_no_secrets_logged(caplog, made)


def assert_no_secrets_logged(caplog: pytest.LogCaptureFixture, keys: Keys) -> None:
    base64_digest = re.compile(r"[A-Za-z0-9+/]{43}=")  # an OK-ACCESS-SIGN or login sign
    # Any 12 characters of a credential count: a log line may show a value cut short.
    pieces = {
        value[start : start + 12]
        for value in (keys.key, keys.secret, keys.passphrase)
        for start in range(len(value) - 11)
    }
    # In teardown, caplog.records holds teardown's records only: read every phase.
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    assert records, "nothing was captured: the scan would prove nothing"
    for record in records:
        line = record.getMessage() + (record.exc_text or "")
        leaked = [piece for piece in pieces if piece in line]
        assert not leaked, f"a credential was logged: {line!r}"
        assert not base64_digest.search(line), f"a signature-like value was logged: {line!r}"


def fast_backoff(base_s: float = 0.05) -> Backoff:
    return Backoff(base_s=base_s, cap_s=base_s, rng=random.Random(0))


class LiveKernel(TradingStack):
    """The kernel's trading path on live OKX connections: feed, risk, journal, orders, venue."""

    def __init__(
        self,
        emulator: Emulator,
        keys: Keys,
        journal_path: Path,
        *,
        backoff: Backoff | None = None,
        lookup_delay_s: float = 0.05,
        ping_after_s: float = 25.0,
    ) -> None:
        super().__init__("okx", SYMBOL, journal_path, usdt=USDT, quantity=QUANTITY)
        feed = OkxFeed(self.bus, instruments=load_okx_instruments(INSTRUMENTS))
        self.trade_on(
            feed,
            OkxMarketData(
                feed,
                [SYMBOL],
                url=f"{emulator.ws_url}/ws/v5/public",
                backoff=fast_backoff(),
            ),
        )
        self.venue = OkxOrderEntry(
            self.bus,
            credentials=keys.credentials,
            instruments=self.feed.instrument,
            rest_url=emulator.http_url,
            private_url=f"{emulator.ws_url}/ws/v5/private",
            backoff=backoff or fast_backoff(),
            lookup_delay_s=lookup_delay_s,
            ping_after_s=ping_after_s,
            orders=self.orders,
        )
        self.route_to(self.venue)


def run(coroutine: Any) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


async def signed_call(
    emulator: Emulator, keys: Keys, method: str, path: str, **fields: str
) -> list[dict[str, Any]]:
    """A second client of the same account (another process, or a person at the web page)."""
    rest = OkxRest(rest_url=emulator.http_url)
    await rest.open()
    try:
        await rest.sync_clock()
        return await rest.call(method, path, body=fields, keys=keys.credentials.for_trading())
    finally:
        await rest.close()


def emulator_order(emulator: Emulator, order: Order) -> Any:
    venue_order = emulator.engine.find(
        SYMBOL, client_order_id=venue_client_id(order.client_order_id)
    )
    assert venue_order is not None, f"the emulator never received {order.client_order_id}"
    return venue_order


def assert_fills_match_the_venue(emulator: Emulator, order: Order) -> None:
    """The kernel's fills are exactly the venue's: quantity, notional, fees, trade ids."""
    venue_order = emulator_order(emulator, order)
    assert order.filled_quantity == venue_order.executed
    assert order.filled_notional == venue_order.quote_executed
    assert order.fees == venue_order.fees
    assert order.fill_ids == {str(fill.trade_id) for fill in venue_order.fills}


# -- specifications ---------------------------------------------------------------


def test_the_paper_venue_and_okx_are_both_order_venues_on_the_bus(keys: Keys) -> None:
    async def scenario() -> None:
        bus = Bus()
        okx = OkxOrderEntry(bus, credentials=keys.credentials, instruments=lambda _: None)
        venues: list[OrderVenue] = [PaperVenue(bus, instruments={}), okx]  # checked by mypy
        assert bus.endpoints == ["okx.cancel", "okx.submit", "paper.cancel", "paper.submit"]
        # Not started: an order is refused at once, with the reason, and nothing is sent.
        rejected: list[Any] = []
        bus.subscribe("events.order.okx", rejected.append)
        okx.submit(OrderRequest("early", "okx", SYMBOL, OrderSide.BUY, OrderType.MARKET, 1))
        assert [event.reason for event in rejected] == ["the okx venue is not started"]
        for venue in venues:
            venue.close()
        assert bus.endpoints == []

    run(scenario())


def test_an_order_passes_risk_and_the_journal_then_fills_on_okx_and_reaches_positions(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.marketable_buy()
            assert order.status is OrderStatus.PENDING_NEW  # routed, not yet answered
            await until(lambda: order.status is OrderStatus.FILLED)
            assert_fills_match_the_venue(emulator, order)
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == QUANTITY
            assert order.fees > 0  # the venue's fee, exact to the unit
            kinds = kernel.journal_kinds()
            assert kinds.index("submit") < kinds.index("event")  # on record before it acted
            assert kinds.count("event") == 1 + len(order.fill_ids)  # accepted, then each fill
            # The same trades again, from the venue's fill list: counted once.
            assert await kernel.venue.fetch_fills(order.client_order_id) == 0
            assert kernel.venue.duplicate_fills == len(order.fill_ids)
            assert kernel.orders.duplicate_fills == 0
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == QUANTITY
            await kernel.stop()

    run(scenario())


def test_a_resting_order_is_cancelled_at_the_venue(tmp_path: Path, keys: Keys) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.NEW)
            assert emulator_order(emulator, order).open
            assert kernel.orders.cancel(order.client_order_id)
            assert order.status is OrderStatus.PENDING_CANCEL
            await until(lambda: order.status is OrderStatus.CANCELED)
            assert emulator_order(emulator, order).status == "CANCELED"
            assert order.filled_quantity == 0
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == 0
            await kernel.stop()

    run(scenario())


def test_a_cancel_the_venue_refuses_is_a_cancel_rejection_and_the_order_is_looked_up(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj", backoff=fast_backoff(2.0))
            await kernel.start()
            heard: list[Any] = []
            kernel.bus.subscribe(topics.strategy_events("test"), heard.append)
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.NEW)
            # Someone cancels it by hand, and the push telling the kernel is lost with the
            # connection: the kernel still believes the order is working.
            emulator.faults.disconnect_after(0, match="orders:")
            await signed_call(
                emulator,
                keys,
                "POST",
                "/api/v5/trade/cancel-order",
                instId=SYMBOL,
                clOrdId=venue_client_id(order.client_order_id),
            )
            await until(lambda: not kernel.venue.stream_connected.is_set())
            assert order.status is OrderStatus.NEW
            assert kernel.orders.cancel(order.client_order_id)
            await until(lambda: order.status is OrderStatus.CANCELED)
            refusals = [event for event in heard if isinstance(event, CancelRejected)]
            assert [event.reason for event in refusals] == [
                rejection_reason(
                    "51400",
                    "Order cancellation failed as the order has been filled, canceled or does "
                    "not exist.",
                )
            ]
            await kernel.stop()

    run(scenario())


def test_an_order_canceled_by_market_maker_protection_expires_with_that_reason(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.NEW)
            # The emulator has no market maker protection: this is the push OKX sends then.
            push = {
                "arg": {"channel": "orders", "instType": "SPOT", "uid": "1"},
                "data": [
                    {
                        "instId": SYMBOL,
                        "ordId": order.venue_order_id,
                        "clOrdId": venue_client_id(order.client_order_id),
                        "state": "mmp_canceled",
                        "accFillSz": "0",
                        "fillSz": "0",
                        "tradeId": "",
                        "uTime": str(time.time_ns() // 1_000_000),
                    }
                ],
            }
            kernel.venue.on_private_message(orjson.dumps(push))
            await until(lambda: order.status is OrderStatus.EXPIRED)
            assert "market maker protection" in order.reason
            await kernel.stop()

    run(scenario())


def test_venue_rejections_reach_the_order_manager_with_the_okx_reason(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            emulator.faults.reject_orders(
                "51020", "Your order should meet or exceed the minimum order amount."
            )
            scripted = kernel.resting_buy()
            await until(lambda: scripted.status is OrderStatus.REJECTED)
            assert scripted.reason == (
                "okx 51020 (order amount below the minimum): "
                "Your order should meet or exceed the minimum order amount."
            )
            # A real refusal, not a scripted one: selling more BTC than the account holds.
            too_big = kernel.submit(OrderSide.SELL, kernel.best(OrderSide.BUY), 20 * 10**8)
            await until(lambda: too_big.status is OrderStatus.REJECTED)
            assert too_big.reason == rejection_reason(
                "51008", "Order failed. Insufficient balance."
            )
            assert "insufficient balance" in too_big.reason
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == 0
            assert emulator.stats.orders_rejected == 2
            await kernel.stop()

    run(scenario())


def test_an_answer_with_an_unknown_outcome_is_looked_up_not_guessed(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            requests_before = emulator.stats.rest_requests
            emulator.faults.reject_orders(
                "50004",
                "Endpoint request timeout (does not mean that the request was successful"
                " or failed, please check the request result).",
            )
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.EXPIRED)
            # Not rejected on the venue's word: looked up twice, a little later each time (it
            # might still have been on its way), and it does not exist.
            assert order.reason == "the venue does not know the order"
            lookups = emulator.stats.rest_requests - requests_before - 1  # less the order
            assert lookups == 2
            assert emulator.stats.orders == 1  # and it was not sent again
            await kernel.stop()

    run(scenario())


def test_a_clock_offset_is_measured_at_start_and_an_expired_timestamp_resyncs_and_resends(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            emulator.faults.clock_offset_ms(40_000)  # the venue's clock runs 40 s ahead
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()  # the private websocket's login is on the venue's time too
            assert abs(kernel.venue.rest.clock.offset_ms - 40_000) < 1000
            first = kernel.marketable_buy()
            await until(lambda: first.status is OrderStatus.FILLED)
            assert emulator.stats.timestamp_rejections == 0

            emulator.faults.clock_offset_ms(-20_000)  # the venue's clock jumps 60 s back
            second = kernel.marketable_buy()
            await until(lambda: second.status is OrderStatus.FILLED)
            assert emulator.stats.timestamp_rejections == 1  # 50102 once, re-measured, resent
            assert kernel.venue.rest.timestamp_retries == 1
            assert abs(kernel.venue.rest.clock.offset_ms + 20_000) < 1000
            assert emulator.stats.orders == 2  # the refused request never reached the engine
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == 2 * QUANTITY
            await kernel.stop()

    run(scenario())


def test_a_rate_limited_order_waits_out_the_window_and_is_sent_once_more(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start()
            emulator.faults.rate_limit(429, match="/api/v5/trade/order")
            sent = time.monotonic()
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.FILLED)
            # OKX sends no Retry-After: the endpoint's 2 s window passes before the retry.
            assert time.monotonic() - sent >= 1.9
            assert kernel.venue.rest.rate_limited == 1
            assert emulator.stats.rate_limited == 1
            assert emulator.stats.orders == 1  # the refused request never reached the engine
            await kernel.stop()

    run(scenario())


def test_orders_are_paced_at_sixty_per_two_seconds_per_instrument() -> None:
    now = [1000.0]
    limits = RateLimits(clock=lambda: now[0])

    async def scenario() -> None:
        place = limits.window("POST", "/api/v5/trade/order", SYMBOL)
        for _ in range(60):
            await place.acquire()
        assert place.delay() == pytest.approx(2.0)  # the 61st waits for the first to age out
        # Another instrument has its own budget; the pending-orders list is one per account.
        assert limits.window("POST", "/api/v5/trade/order", "ETH-USDT").delay() == 0
        pending = limits.window("GET", "/api/v5/trade/orders-pending", SYMBOL)
        assert pending is limits.window("GET", "/api/v5/trade/orders-pending", "ETH-USDT")
        now[0] += 1.5
        assert place.delay() == pytest.approx(0.5)  # a sliding window, not an aligned one
        now[0] += 0.5
        assert place.delay() == 0

    assert ENDPOINT_LIMITS[("POST", "/api/v5/trade/order")].requests == 60
    run(scenario())


def test_a_fill_made_while_the_private_websocket_was_down_is_found_by_reconciliation(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj", backoff=fast_backoff(1.0))
            await kernel.start()
            assert kernel.venue.stream_connects == 1
            # The private connection drops as it is about to push this order's first update.
            emulator.faults.disconnect_after(0, match="orders:")
            order = kernel.marketable_buy()
            await until(lambda: order.status is OrderStatus.NEW)  # the REST answer
            assert emulator_order(emulator, order).status == "FILLED"
            assert order.filled_quantity == 0  # the kernel has not heard yet
            await until(lambda: order.status is OrderStatus.FILLED)
            await until(lambda: len(kernel.venue.reconciliations) == 2)  # at start, at reconnect
            assert emulator.stats.disconnects == 1
            assert kernel.venue.stream_connects == 2  # logged in and subscribed again
            latest = kernel.venue.reconciliations[-1]
            assert (latest.checked, latest.fills, latest.closed) == (1, 1, 1)
            assert_fills_match_the_venue(emulator, order)
            assert kernel.orders.portfolio.quantity("okx", SYMBOL) == QUANTITY
            await kernel.stop()

    run(scenario())


def test_silence_on_the_private_websocket_earns_a_ping_and_pongs_keep_it_open(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj", ping_after_s=0.2)
            await kernel.start()
            await until(lambda: kernel.venue.pings >= 3)
            assert kernel.venue.stream_connects == 1  # every ping was answered
            assert kernel.venue.stream_connected.is_set()
            await kernel.stop()

    run(scenario())


def test_a_wrong_passphrase_is_refused_by_login_and_by_rest_with_the_reason(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        # The venue knows another passphrase than the one this kernel holds.
        async with Emulator(
            "okx", RECORDING, speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            kernel = LiveKernel(emulator, keys, tmp_path / "journal.tkj")
            await kernel.start(reconciled=False)
            await until(lambda: len(kernel.venue.login_failures) >= 2)  # and it keeps trying
            assert kernel.venue.login_failures[0] == "60024: Wrong passphrase"
            assert not kernel.venue.stream_connected.is_set()
            assert kernel.venue.reconciliations == []
            order = kernel.resting_buy()
            await until(lambda: order.status is OrderStatus.REJECTED)
            assert order.reason == rejection_reason(
                "50105", "Request header OK-ACCESS-PASSPHRASE incorrect."
            )
            assert emulator.stats.orders == 0
            await kernel.stop()

    run(scenario())


def test_a_restart_from_the_journal_reconciles_and_neither_loses_nor_duplicates_an_order(
    tmp_path: Path, keys: Keys
) -> None:
    async def scenario() -> None:
        async with keys.emulator(speed=20) as emulator:
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
                "POST",
                "/api/v5/trade/cancel-order",
                instId=SYMBOL,
                clOrdId=venue_client_id(cancelled_while_down.client_order_id),
            )
            stranger = await signed_call(
                emulator,
                keys,
                "POST",
                "/api/v5/trade/order",
                instId=SYMBOL,
                tdMode="cash",
                side="buy",
                ordType="limit",
                px="1000",
                sz="0.001",
                clOrdId="placedbyhand",
            )
            assert stranger[0]["sCode"] == "0"
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
            assert "placedbyhand" not in orders  # reported, never adopted
            assert second.venue.unknown_orders == {"placedbyhand"}
            report = second.venue.reconciliations[0]
            assert (report.checked, report.closed, report.lost) == (3, 1, 1)
            assert report.unknown_at_kernel == ["placedbyhand"]
            # Nothing placed twice, nothing counted twice.
            assert emulator.stats.orders == orders_at_the_venue
            assert second.orders.portfolio.quantity("okx", SYMBOL) == QUANTITY
            assert_fills_match_the_venue(emulator, orders[filled.client_order_id])
            # The restarted kernel keeps trading: the resting order can still be cancelled.
            assert second.orders.cancel(resting.client_order_id)
            await until(lambda: orders[resting.client_order_id].status is OrderStatus.CANCELED)
            await second.stop()

    run(scenario())


def test_the_private_websocket_checks_the_login_before_it_pushes_orders(keys: Keys) -> None:
    async def scenario() -> None:
        async with keys.emulator() as emulator:
            rest = OkxRest(rest_url=emulator.http_url)
            await rest.open()
            url = f"{emulator.ws_url}/ws/v5/private"
            # This client's login frames carry the credentials: keep them out of the debug log.
            quiet = logging.getLogger("tests.okx_orders.wire")
            quiet.setLevel(logging.INFO)
            async with websockets.connect(url, max_queue=None, logger=quiet) as ws:

                async def ask(request: object) -> dict[str, Any]:
                    await ws.send(orjson.dumps(request).decode())
                    answer: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                    return answer

                def login(
                    *,
                    secret: str = keys.secret,
                    passphrase: str = keys.passphrase,
                    seconds: int | None = None,
                ) -> dict[str, Any]:
                    stamp = str(seconds if seconds is not None else int(time.time()))
                    return {
                        "op": "login",
                        "args": [
                            {
                                "apiKey": keys.key,
                                "passphrase": passphrase,
                                "timestamp": stamp,
                                "sign": sign(secret, f"{stamp}GET/users/self/verify"),
                            }
                        ],
                    }

                orders_channel = {"channel": "orders", "instType": "SPOT"}
                early = await ask({"op": "subscribe", "args": [orders_channel]})
                wrong_passphrase = await ask(login(passphrase="not-it"))
                wrong_sign = await ask(login(secret="not-the-secret"))
                expired = await ask(login(seconds=int(time.time()) - 60))
                accepted = await ask(login())
                subscribed = await ask({"op": "subscribe", "args": [orders_channel]})
                await ws.send("ping")
                pong = await asyncio.wait_for(ws.recv(), 5)

                emulator.start_replay()
                await asyncio.wait_for(emulator.market.finished.wait(), 10)
                market = emulator.market
                assert isinstance(market, OkxMarket)
                book = market.books[f"books:{SYMBOL}"]
                ask_px, ask_sz = book.asks.best(1)[0][:2]
                placed = await rest.call(
                    "POST",
                    "/api/v5/trade/order",
                    body={
                        "instId": SYMBOL,
                        "tdMode": "cash",
                        "side": "buy",
                        "ordType": "ioc",
                        "px": ask_px,
                        "sz": ask_sz,
                        "clOrdId": "take1",
                    },
                    keys=keys.credentials.for_trading(),
                )
                pushes = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
            await rest.close()
        assert (early["event"], early["code"]) == ("error", "60011")
        assert (wrong_passphrase["code"], wrong_passphrase["msg"]) == ("60024", "Wrong passphrase")
        assert (wrong_sign["code"], wrong_sign["msg"]) == ("60007", "Invalid sign")
        assert (expired["code"], expired["msg"]) == ("60006", "Timestamp request expired")
        assert (accepted["event"], accepted["code"]) == ("login", "0")
        assert (subscribed["event"], subscribed["arg"]) == ("subscribe", orders_channel)
        assert pong == "pong"
        live, filled = (push["data"][0] for push in pushes)
        assert all(push["arg"]["channel"] == "orders" for push in pushes)
        assert (live["clOrdId"], live["state"], live["tradeId"]) == ("take1", "live", "")
        assert (filled["state"], filled["fillPx"], filled["fillSz"]) == ("filled", ask_px, ask_sz)
        assert filled["ordId"] == placed[0]["ordId"]
        assert filled["tradeId"] and filled["execType"] == "T"
        assert filled["fillFee"].startswith("-") and filled["fillFeeCcy"] == "USDT"
        assert emulator.stats.signature_rejections == 1
        assert emulator.stats.timestamp_rejections == 1

    run(scenario())


def test_fees_convert_exactly_into_quote_fee_units() -> None:
    btc = Instrument("okx", SYMBOL, 1, 8, 1, 1, base="BTC", quote="USDT")
    price = to_fixed("30000.1", 1)
    assert fee_in_quote("-0.0300001", "USDT", price, btc) == 3_000_010  # charged
    assert fee_in_quote("0.01", "USDT", price, btc) == -1_000_000  # a rebate
    # 0.000001 BTC at 30000.1 is 0.0300001 USDT exactly.
    assert fee_in_quote("-0.000001", "BTC", price, btc) == 3_000_010
    # 0.00000001 BTC is 0.000300001 USDT: rounded up to the fee precision.
    assert fee_in_quote("-0.00000001", "BTC", price, btc) == 30_001
    assert fee_in_quote("-0.1", "OKB", price, btc) is None


def test_client_order_ids_okx_cannot_take_are_sent_as_a_stable_digest() -> None:
    assert venue_client_id("mm42") == "mm42"
    digest = venue_client_id("t123-4")
    assert digest == venue_client_id("t123-4")  # the same after a restart
    assert digest.startswith("k") and len(digest) == 32 and digest.isalnum()
    assert venue_client_id("x" * 33) != "x" * 33


def test_secrets_never_reach_a_log_line_even_when_logged_on_purpose(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """The credentials' objects print as ``***``; the scan in the fixture covers every test."""
    api_key = keys.credentials.for_trading()
    logging.getLogger("tradekernel.test").warning(
        "keys %s %r %s", api_key.key, api_key.secret, api_key.passphrase
    )
    assert caplog.records[-1].getMessage().count("***") == 3
    assert_no_secrets_logged(caplog, keys)
