"""Risk limits and the plug-in inventory over loopback gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from importlib.metadata import EntryPoint
from pathlib import Path

import grpc
import pytest
from test_server_api import ADMIN_TOKEN, READ_TOKEN, TOKENS, auth, run
from trading_stack import TradingStack

from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.api import ApiParts, ApiServer
from kernel.plugins import PluginHost
from kernel.risk import InstrumentLimits, RateLimit, RiskConfig
from kernel.trading.changes import RuntimeChanges
from tradekernel_sdk.proto.tradekernel.v1 import (
    plugins_pb2,
    plugins_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
)

LIMITS = RiskConfig(
    defaults=InstrumentLimits(
        max_position=Decimal("0.5"),
        max_order_notional=Decimal("1000"),
        price_band_bps=200,
    ),
    instruments={"binance.BTCUSDT": InstrumentLimits(max_open_orders=3)},
    max_gross_exposure=Decimal("25000.5"),
    order_rate=RateLimit(Decimal("0.5"), 4),
    venue_order_rates={"paper": RateLimit(Decimal("20"), 10)},
    max_daily_loss=Decimal("100"),
    max_drawdown_bps=500,
)


@asynccontextmanager
async def serving(
    tmp_path: Path, *, risk: RiskConfig | None = None, plugins: PluginHost | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    """Start a trading stack with ``risk`` limits and an API server with ``plugins``."""
    stack = TradingStack(tmp_path / "journal.tkj", risk=risk)
    changes = RuntimeChanges(
        journal=stack.journal, risk=stack.risk, runner=stack.runner, strategy_plugins={}
    )
    parts = ApiParts(
        bus=stack.bus,
        market=stack.market,
        venues=stack.venues,
        instruments=lambda: list(KNOWN_INSTRUMENTS["binance"].values()),
        orders=lambda: stack.orders,
        risk=lambda: stack.risk,
        plugins=lambda: plugins,
        changes=lambda: changes,
    )
    server = ApiServer(parts, tokens=TOKENS, grace_s=0.5)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop()
        stack.close()


async def fails(call: object) -> grpc.StatusCode:
    """Return the status code a call fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value.code()


def test_get_limits_reads_the_engine_config(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, risk=LIMITS) as channel:
            risk = risk_pb2_grpc.RiskServiceStub(channel)
            answer = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            assert answer.revision == 1
            limits = answer.limits
            defaults = limits.defaults
            assert (defaults.max_position.units, defaults.max_position.precision) == (5, 1)
            assert defaults.max_order_notional.value == "1000.00000000"
            assert not defaults.HasField("min_order_notional")
            assert defaults.price_band_bps == 200
            assert not defaults.HasField("max_open_orders")
            (override,) = limits.instruments
            assert (override.instrument.venue, override.instrument.symbol) == (
                "binance",
                "BTCUSDT",
            )
            assert override.limits.max_open_orders == 3
            assert not override.limits.HasField("max_position")  # keeps the default
            assert limits.max_gross_exposure.value == "25000.50000000"
            assert (limits.order_rate.rate_per_s.units, limits.order_rate.rate_per_s.precision) == (
                5,
                1,
            )
            assert limits.order_rate.burst == 4
            (venue_rate,) = limits.venue_order_rates
            assert venue_rate.venue == "paper" and venue_rate.rate.rate_per_s.units == 20
            assert limits.self_trade_prevention
            assert limits.max_daily_loss.value == "100.00000000"
            assert not limits.HasField("max_drawdown")
            assert limits.max_drawdown_bps == 500
            assert not limits.HasField("max_open_orders_per_venue")

    run(main())


def test_default_limits_are_all_off(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as channel:
            risk = risk_pb2_grpc.RiskServiceStub(channel)
            answer = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            limits = answer.limits
            assert not limits.instruments and not limits.venue_order_rates
            assert not limits.HasField("order_rate") and not limits.HasField("max_daily_loss")
            assert not limits.defaults.HasField("max_position")

    run(main())


def _host() -> PluginHost:
    """Return a host that found a plug-in it could not import and one the operator blocked."""
    entry_points = [
        EntryPoint(name="zeta-missing", value="tk_api_test_not_installed", group="tradekernel"),
        EntryPoint(name="alpha-blocked", value="tk_api_test_blocked", group="tradekernel"),
    ]
    return PluginHost(
        entry_points=lambda: entry_points, block=["alpha-blocked"], environ={}, default_plugins=()
    )


def test_list_plugins(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, plugins=_host()) as channel:
            plugins = plugins_pb2_grpc.PluginServiceStub(channel)
            answer = await plugins.ListPlugins(
                plugins_pb2.ListPluginsRequest(), metadata=auth(READ_TOKEN)
            )
            assert [p.name for p in answer.plugins] == ["alpha-blocked", "zeta-missing"]
            blocked, missing = answer.plugins
            assert blocked.status == plugins_pb2.PLUGIN_STATUS_DISABLED
            assert blocked.source == "entry point" and blocked.module == "tk_api_test_blocked"
            assert blocked.reason
            assert not blocked.HasField("api_version")
            assert missing.status == plugins_pb2.PLUGIN_STATUS_REFUSED
            assert missing.reason.startswith("import failed")
            request = plugins_pb2.ListPluginsRequest()
            assert await fails(plugins.ListPlugins(request)) == grpc.StatusCode.UNAUTHENTICATED

    run(main())


def test_plugins_that_did_not_load_cannot_be_switched_while_running(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, plugins=_host()) as channel:
            plugins = plugins_pb2_grpc.PluginServiceStub(channel)
            admin = auth(ADMIN_TOKEN)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await plugins.EnablePlugin(
                    plugins_pb2.EnablePluginRequest(name="alpha-blocked"), metadata=admin
                )
            assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "restart" in (raised.value.details() or "")
            disable = plugins_pb2.DisablePluginRequest(name="zeta-missing")
            code = await fails(plugins.DisablePlugin(disable, metadata=admin))
            assert code == grpc.StatusCode.FAILED_PRECONDITION
            unknown = plugins_pb2.EnablePluginRequest(name="nope")
            assert await fails(plugins.EnablePlugin(unknown, metadata=admin)) == (
                grpc.StatusCode.NOT_FOUND
            )
            empty = plugins_pb2.DisablePluginRequest()
            assert await fails(plugins.DisablePlugin(empty, metadata=admin)) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
            code = await fails(plugins.DisablePlugin(disable, metadata=auth(READ_TOKEN)))
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert await fails(plugins.DisablePlugin(disable)) == grpc.StatusCode.UNAUTHENTICATED

    run(main())


def test_without_a_plugin_host(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as channel:
            plugins = plugins_pb2_grpc.PluginServiceStub(channel)
            request = plugins_pb2.ListPluginsRequest()
            code = await fails(plugins.ListPlugins(request, metadata=auth(READ_TOKEN)))
            assert code == grpc.StatusCode.FAILED_PRECONDITION

    run(main())


def test_limits_from_get_limits_update_back_unchanged(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path, risk=LIMITS) as channel:
            risk = risk_pb2_grpc.RiskServiceStub(channel)
            read = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            answer = await risk.UpdateLimits(
                risk_pb2.UpdateLimitsRequest(
                    limits=read.limits, expected_revision=read.revision, reason="round trip"
                ),
                metadata=auth(ADMIN_TOKEN),
            )
            assert answer.revision == 2
            assert answer.limits == read.limits
            again = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            assert again.limits == read.limits and again.revision == 2

    run(main())
