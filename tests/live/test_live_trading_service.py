"""The service trading live: ``[[live]] trade = true`` routes orders to Binance (the emulator).

``tradekernel run``'s service is built from a configuration, keys come from an
owner-only secrets file, and the first-party strategies trade: every order
passes risk and the journal, travels over signed REST on loopback to the
emulator, and what the venue answers comes back into orders and positions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.api import ApiServer
from kernel.emulator import Emulator
from kernel.journal import Journal
from kernel.live.binance_orders import ReconcileReport, venue_client_id
from kernel.live.order_entry import ORDER_ENTRY_VENUES, LiveOrderEntryComponent
from kernel.orders import Order, OrderStatus
from kernel.service.builder import KernelApp, build
from kernel.service.config import ConfigError, KernelConfig, parse_config
from kernel.service.runner import format_summary, summary
from tradekernel_sdk import codec
from tradekernel_sdk.client import AsyncKernelClient
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderType

ROOT = Path(__file__).resolve().parents[2]
BTC = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"
DEMO = tomllib.loads((ROOT / "kernel" / "data" / "default.toml").read_text())
SYMBOL = "BTCUSDT"
READER_TOKEN = "reader-token-" + "7" * 8


async def until(
    condition: Callable[[], bool], timeout: float = 60.0, state: Callable[[], object] = str
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not so within {timeout:g} s: {state()}") from None


class Keys:
    """Fresh keys for one test, in an owner-only secrets file; no log line may show them."""

    def __init__(self, folder: Path, *, purpose: str = "trade") -> None:
        self.key = "key-" + secrets.token_hex(20)
        self.secret = "secret-" + secrets.token_hex(24)
        self.path = folder / "secrets.toml"
        self.path.write_text(f'[binance.{purpose}]\nkey = "{self.key}"\nsecret = "{self.secret}"\n')
        self.path.chmod(0o600)

    def assert_not_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        assert caplog.records, "the run logged nothing: the scan would prove nothing"
        signature = re.compile(r"\b[0-9a-f]{64}\b")
        for record in caplog.records:
            line = record.getMessage() + (record.exc_text or "")
            assert self.key not in line
            assert self.secret not in line
            assert not signature.search(line), f"a signature-like value was logged: {line!r}"


def live_config(
    emulator: Emulator, keys: Keys, state: Path, *, api: bool = False, **live: Any
) -> KernelConfig:
    raw: dict[str, Any] = {
        "kernel": {"state_dir": str(state), "secrets_file": str(keys.path)},
        "metrics": {"enabled": False},
        "live": [
            {
                "venue": "binance",
                "symbols": [SYMBOL],
                "ws_url": emulator.ws_url,
                "rest_url": emulator.http_url,
                "trade": True,
                **live,
            }
        ],
        # The demo's taker and market maker on BTCUSDT, under the demo's risk limits.
        "strategies": {
            "imbalance_btc": DEMO["strategies"]["imbalance_btc"],
            "market_maker_btc": DEMO["strategies"]["market_maker_btc"],
        },
        "risk": DEMO["risk"],
    }
    if api:
        raw["api"] = {"enabled": True, "port": 0, "tokens": {READER_TOKEN: ["read"]}}
    return parse_config(raw)


def order_entry(app: KernelApp) -> LiveOrderEntryComponent:
    (component,) = app.order_entries
    return component


def binance_orders(app: KernelApp) -> dict[str, Order]:
    assert app.trading is not None and app.trading.orders is not None
    return {
        cid: order for cid, order in app.trading.orders.orders.items() if order.venue == "binance"
    }


def statuses(app: KernelApp) -> Callable[[], dict[str, str]]:
    """Return a description of the kernel's Binance orders, for a failed wait's message."""
    return lambda: {cid: order.status.value for cid, order in binance_orders(app).items()}


def filled_orders(app: KernelApp) -> int:
    return sum(order.status is OrderStatus.FILLED for order in binance_orders(app).values())


def quoted(app: KernelApp) -> bool:
    """Return whether the market maker has had a quote accepted at the venue."""
    return any(
        order.strategy == "market_maker_btc" and order.venue_order_id
        for order in binance_orders(app).values()
    )


def venue_orders(emulator: Emulator, client_order_id: str) -> list[Any]:
    wanted = venue_client_id(client_order_id)
    return [o for o in emulator.engine.orders_of(SYMBOL) if o.client_order_id == wanted]


def disagreements(app: KernelApp, emulator: Emulator) -> list[str]:
    """Return each order the venue holds that the kernel does not have as the venue has it."""
    kernel = {venue_client_id(cid): order for cid, order in binance_orders(app).items()}
    found = []
    for venue_order in emulator.engine.orders_of(SYMBOL):
        order = kernel.get(venue_order.client_order_id)
        if (
            order is None
            or order.filled_quantity != venue_order.executed
            or order.is_open != venue_order.open
        ):
            found.append(
                f"{venue_order.client_order_id}: venue {venue_order.status} {venue_order.executed},"
                f" kernel {order.status.value if order else 'unknown'}"
                f" {order.filled_quantity if order else 0}"
            )
    return found


def venue_position(emulator: Emulator) -> int:
    return sum(
        order.executed if order.side is OrderSide.BUY else -order.executed
        for order in emulator.engine.orders_of(SYMBOL)
    )


def journal_kinds(state: Path) -> list[tuple[str, Any]]:
    journal = Journal.open(state / "journal.tkj", fsync="never")
    try:
        return [(record.kind, record.payload) for record in journal.records_since(0)]
    finally:
        journal.close()


# -- specifications ---------------------------------------------------------------


def test_strategies_trade_on_binance_through_risk_and_the_journal_and_fills_reach_positions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = Keys(tmp_path)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            app = build(live_config(emulator, keys, state, api=True), progress=False, environ={})
            assert app.paper is None  # binance trades live: paper is not its market
            names = [component.name for component in app.lifecycle.components]
            # Journal replayed, then the venue reconciled, then strategies: stopped in reverse.
            assert (
                names.index("trading") < names.index("orders:binance") < names.index("strategies")
            )
            await app.lifecycle.start()
            component = order_entry(app)
            try:
                assert component.entry is not None and component.entry.reconciliations
                await until(lambda: filled_orders(app) >= 2 and quoted(app), state=statuses(app))
                api = next(c for c in app.lifecycle.components if isinstance(c, ApiServer))
                async with AsyncKernelClient(f"127.0.0.1:{api.port}", READER_TOKEN) as client:
                    status = await client.status()
                shown = {c.name: (c.state, c.detail) for c in status.components}
                assert shown["orders:binance"] == ("running", "")
                emulator.pause()  # the market holds still; what is in flight lands
                await until(
                    lambda: not disagreements(app, emulator),
                    state=lambda: disagreements(app, emulator),
                )
                trading = app.trading
                assert trading is not None and trading.orders is not None
                position = trading.orders.portfolio.quantity("binance", SYMBOL)
                assert position == venue_position(emulator)
            finally:
                await app.lifecycle.stop()
            assert not app.lifecycle.stop_errors
            filled = [o for o in binance_orders(app).values() if o.filled_quantity]
            assert filled
            for order in filled:
                (venue_order,) = venue_orders(emulator, order.client_order_id)
                assert order.fill_ids == {str(fill.trade_id) for fill in venue_order.fills}
                assert order.fees == venue_order.fees
            # Risk had its say: the demo's limits deny some orders, and those never left.
            denied = [o for o in binance_orders(app).values() if o.status is OrderStatus.DENIED]
            for order in denied:
                assert venue_orders(emulator, order.client_order_id) == []
            # On record before it acted: each order's submit precedes every event about it.
            records = journal_kinds(state)
            first_submit: dict[str, int] = {}
            for index, (kind, payload) in enumerate(records):
                if kind == "submit":
                    first_submit.setdefault(payload_cid(payload), index)
            for order in filled:
                assert order.client_order_id in first_submit
            # The strategies ran only while the venue did: nothing was turned away.
            assert component.refused == 0
            # Stopped, the venue's endpoint still answers, with the reason.
            assert component.health() == ("STOPPED", "the binance venue is stopped")
            late: list[Any] = []
            app.bus.subscribe("events.order.binance", late.append)
            app.bus.send(
                "binance.submit",
                OrderRequest("late-1", "binance", SYMBOL, OrderSide.BUY, OrderType.MARKET, 1000),
            )
            assert [event.reason for event in late] == ["the binance venue is stopped"]
            assert venue_orders(emulator, "late-1") == []
            report = summary(app)
            assert report["order_entry"]["binance"]["running"] is False  # stopped by now
            assert report["order_entry"]["binance"]["reconciliations"] >= 1
            assert "orders binance" in format_summary(report)
            assert report["trading"]["positions"]

    asyncio.run(asyncio.wait_for(scenario(), 90))
    keys.assert_not_logged(caplog)


def payload_cid(payload: Any) -> str:
    request = codec.decode(payload[1])
    assert isinstance(request, OrderRequest)
    return request.client_order_id


def test_a_restart_from_the_same_state_reconciles_and_neither_loses_nor_duplicates_an_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = Keys(tmp_path)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with Emulator(
            "binance", [BTC], speed=20, api_key=keys.key, api_secret=keys.secret
        ) as emulator:
            first = build(live_config(emulator, keys, state), progress=False, environ={})
            await first.lifecycle.start()
            try:
                await until(
                    lambda: (
                        any(o.filled_quantity for o in binance_orders(first).values())
                        and any(o.status is OrderStatus.NEW for o in binance_orders(first).values())
                    ),
                    state=statuses(first),
                )
            finally:
                await first.lifecycle.stop()
            assert not first.lifecycle.stop_errors
            before = binance_orders(first)
            assert first.trading is not None and first.trading.orders is not None
            open_at_stop = {o.client_order_id for o in first.trading.orders.open_orders("binance")}
            assert open_at_stop  # the market maker's quotes outlive the process
            assert order_entry(first).refused == 0

            second = build(live_config(emulator, keys, state), progress=False, environ={})
            await second.lifecycle.start()
            try:
                assert second.trading is not None and second.trading.recovered > 0
                entry = order_entry(second).entry
                assert entry is not None
                report = entry.reconciliations[0]
                assert isinstance(report, ReconcileReport)
                # The first reconciliation saw every order the journal had open, and only those.
                assert report.checked == len(open_at_stop)
                assert report.unknown_at_kernel == []
                after = binance_orders(second)
                assert set(before) <= set(after)  # nothing lost
                for cid in open_at_stop:
                    order = after[cid]
                    sent = venue_orders(emulator, cid)
                    if not sent:  # cut off by the stop before it reached the venue
                        assert order.status is OrderStatus.EXPIRED
                        continue
                    (venue_order,) = sent
                    assert order.venue_order_id == str(venue_order.order_id)
                    assert order.filled_quantity >= before[cid].filled_quantity
                emulator.pause()
                await until(
                    lambda: not disagreements(second, emulator),
                    state=lambda: disagreements(second, emulator),
                )
                trading = second.trading
                assert trading.orders is not None
                assert trading.orders.portfolio.quantity("binance", SYMBOL) == venue_position(
                    emulator
                )
            finally:
                await second.lifecycle.stop()
            assert not second.lifecycle.stop_errors
            # Nothing sent twice: every client order id reached the venue at most once.
            for cid in binance_orders(second):
                assert len(venue_orders(emulator, cid)) <= 1
            assert trading.orders.duplicate_fills == 0

    asyncio.run(asyncio.wait_for(scenario(), 120))
    keys.assert_not_logged(caplog)


def test_missing_trade_keys_stop_the_start_naming_what_to_set(tmp_path: Path) -> None:
    config = parse_config(
        {
            "kernel": {"state_dir": str(tmp_path / "state")},
            "live": [{"venue": "binance", "symbols": [SYMBOL], "trade": True}],
            "strategies": {"imbalance_btc": DEMO["strategies"]["imbalance_btc"]},
        }
    )
    with pytest.raises(ConfigError) as missing:
        build(config, progress=False, environ={})
    message = str(missing.value)
    assert message.startswith("live[0].trade: no trading keys for binance")
    assert "TRADEKERNEL_BINANCE_TRADE_KEY" in message
    assert "TRADEKERNEL_BINANCE_TRADE_SECRET" in message
    assert "kernel.secrets_file" in message
    # Read-only keys in the secrets file do not stand in for trade keys.
    keys = Keys(tmp_path, purpose="read")
    read_only = parse_config(
        {
            "kernel": {"state_dir": str(tmp_path / "state"), "secrets_file": str(keys.path)},
            "live": [{"venue": "binance", "symbols": [SYMBOL], "trade": True}],
            "strategies": {"imbalance_btc": DEMO["strategies"]["imbalance_btc"]},
        }
    )
    with pytest.raises(ConfigError, match=r"read-only keys cannot trade.*\[binance\.trade\]"):
        build(read_only, progress=False, environ={})
    # Keys from the environment are enough; nothing else needs to change.
    environ = {
        "TRADEKERNEL_BINANCE_TRADE_KEY": "k" * 12,
        "TRADEKERNEL_BINANCE_TRADE_SECRET": "s" * 12,
    }
    app = build(config, progress=False, environ=environ)
    assert [c.venue for c in app.order_entries] == ["binance"]


def test_tradekernel_run_without_trade_keys_exits_before_connecting(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        f"""
[kernel]
state_dir = "{tmp_path / "state"}"

[metrics]
enabled = false

[[live]]
venue = "binance"
symbols = ["{SYMBOL}"]
ws_url = "ws://127.0.0.1:9"
rest_url = "http://127.0.0.1:9"
trade = true

[strategies.imbalance_btc]
strategy = "imbalance"
venue = "binance"
symbol = "{SYMBOL}"
tick = 1_000_000
lot = 1_000
quantity = 100_000
max_position = 500_000
"""
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRADEKERNEL_BINANCE_")}
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    assert done.returncode == 2
    assert (
        "tradekernel run: live[0].trade: no trading keys for binance: set"
        " TRADEKERNEL_BINANCE_TRADE_KEY and TRADEKERNEL_BINANCE_TRADE_SECRET"
    ) in done.stderr
    assert not (tmp_path / "state").exists()  # stopped before anything started


def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    keys.path.chmod(0o644)
    config = parse_config(
        {
            "kernel": {"secrets_file": str(keys.path)},
            "live": [{"venue": "binance", "symbols": [SYMBOL], "trade": True}],
            "strategies": {"imbalance_btc": DEMO["strategies"]["imbalance_btc"]},
        }
    )
    with pytest.raises(ConfigError, match=r"live\[0\].trade: secrets file .* chmod 600"):
        build(config, progress=False, environ={})


def test_an_order_routed_before_the_venue_started_is_rejected_with_the_reason(
    tmp_path: Path,
) -> None:
    keys = Keys(tmp_path)
    config = parse_config(
        {
            "kernel": {"state_dir": str(tmp_path / "state"), "secrets_file": str(keys.path)},
            "live": [{"venue": "binance", "symbols": [SYMBOL], "trade": True}],
            "strategies": {"imbalance_btc": DEMO["strategies"]["imbalance_btc"]},
        }
    )
    app = build(config, progress=False, environ={})
    events: list[Any] = []
    app.bus.subscribe("events.order.binance", events.append)
    app.bus.send(
        "binance.submit",
        OrderRequest("early-1", "binance", SYMBOL, OrderSide.BUY, OrderType.MARKET, 1000),
    )
    assert [(e.client_order_id, e.reason) for e in events] == [
        ("early-1", "the binance venue is not started")
    ]
    assert order_entry(app).health() == ("PENDING", "the binance venue is not started")


def test_paper_is_off_a_live_trading_venue_and_stays_for_the_others(tmp_path: Path) -> None:
    live = {"venue": "binance", "symbols": [SYMBOL], "trade": True}
    quiet = parse_config({"live": [live]})
    assert quiet.paper.enabled is False
    elsewhere = parse_config(
        {
            "live": [live, {"venue": "binance-usdm", "symbols": [SYMBOL]}],
            "paper": {"market_venue": "binance-usdm"},
        }
    )
    assert elsewhere.paper.enabled and elsewhere.paper.market_venue == "binance-usdm"
    with pytest.raises(
        ConfigError,
        match=r"paper.market_venue: binance trades live \(live\[0\].trade = true\) and cannot",
    ):
        parse_config({"live": [live], "paper": {"market_venue": "binance"}})
    with pytest.raises(ConfigError, match=r"paper.market_venue: binance trades live"):
        parse_config({"live": [live], "paper": {"enabled": True}})


def test_paper_and_a_live_venue_trade_side_by_side(tmp_path: Path) -> None:
    environ = {
        "TRADEKERNEL_BINANCE_USDM_TRADE_KEY": "k" * 12,
        "TRADEKERNEL_BINANCE_USDM_TRADE_SECRET": "s" * 12,
    }
    config = parse_config(
        {
            "kernel": {"state_dir": str(tmp_path / "state")},
            "live": [
                {"venue": "binance", "symbols": [SYMBOL]},
                {"venue": "binance-usdm", "symbols": [SYMBOL], "trade": True},
            ],
            "strategies": {"imbalance_btc": DEMO["strategies"]["imbalance_btc"]},
        }
    )
    app = build(config, progress=False, environ=environ)
    assert app.paper is not None
    assert app.trading is not None
    routes = app.trading.venues.routes
    assert routes == {"binance": "paper", "binance-usdm": "binance-usdm"}
    assert [c.name for c in app.order_entries] == ["orders:binance-usdm"]


def test_only_venues_with_order_entry_can_trade() -> None:
    assert set(ORDER_ENTRY_VENUES) >= {"binance", "binance-usdm"}
    with pytest.raises(ConfigError, match=r"live\[0\].trade: no live order entry for kraken"):
        parse_config({"live": [{"venue": "kraken", "symbols": ["XBT/USD"], "trade": True}]})
    with pytest.raises(ConfigError, match=r"live\[0\].trade: expected true or false"):
        parse_config({"live": [{"venue": "binance", "symbols": [SYMBOL], "trade": "yes"}]})


def test_a_trading_venue_with_nothing_to_trade_is_refused(tmp_path: Path) -> None:
    config = parse_config({"live": [{"venue": "binance", "symbols": [SYMBOL], "trade": True}]})
    environ = {
        "TRADEKERNEL_BINANCE_TRADE_KEY": "k" * 12,
        "TRADEKERNEL_BINANCE_TRADE_SECRET": "s" * 12,
    }
    with pytest.raises(ConfigError, match=r"live\[0\].trade: nothing would trade"):
        build(config, progress=False, environ=environ)
