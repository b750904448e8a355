"""Changing the risk limits and switching plug-ins while the kernel runs, over loopback gRPC.

Each change is journaled before it acts and comes back from the journal
after a restart (``kernel.trading.changes``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import grpc
from test_server_api import (
    ADMIN_TOKEN,
    READ_TOKEN,
    TRADE_TOKEN,
    auth,
    best_bid,
    code_of,
    frames,
    limit_buy,
    run,
    running,
)
from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.plugins import PluginHost
from kernel.risk import RiskConfig
from kernel.trading.changes import RuntimeChanges
from tradekernel_sdk.orders import OrderSide, OrderStatus, OrderType
from tradekernel_sdk.proto.tradekernel.v1 import (
    orders_pb2,
    orders_pb2_grpc,
    plugins_pb2,
    plugins_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    types_pb2,
)
from tradekernel_sdk.strategy import BookView, OrderIntent, Strategy
from tradekernel_sdk.types import BookDelta, BookSnapshot

__all__ = ["frames"]

USDT = 100_000_000  # one USDT at BTCUSDT's 8 price decimals
PLUGIN = "strategies"  # the first-party plug-in, installed with the kernel


def journal_kinds(stack: TradingStack, kind: str) -> list[list[object]]:
    stack.journal.sync()
    return [record.payload for record in stack.journal.records_since(0) if record.kind == kind]


def notional_cap(usdt: int) -> risk_pb2.RiskLimits:
    """Return limits that cap every order at ``usdt`` of notional and leave the rest off."""
    return risk_pb2.RiskLimits(
        defaults=risk_pb2.InstrumentLimits(
            max_order_notional=types_pb2.Amount(value=f"{usdt}.00000000")
        ),
        self_trade_prevention=True,
    )


def test_update_limits_takes_effect_at_once_and_is_journaled_first(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            risk = risk_pb2_grpc.RiskServiceStub(api.channel)
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            before = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            assert before.revision == 1
            bid = best_bid(api.stack)
            # 100 lots of 0.00001 BTC is about 60 USDT: approved under no limits.
            first = await orders.SubmitOrder(
                limit_buy("before-cap", bid - 50 * USDT), metadata=auth(TRADE_TOKEN)
            )
            assert first.order.status != orders_pb2.ORDER_STATUS_DENIED

            answer = await risk.UpdateLimits(
                risk_pb2.UpdateLimitsRequest(
                    limits=notional_cap(10), expected_revision=1, reason="desk cap"
                ),
                metadata=auth(ADMIN_TOKEN),
            )
            assert answer.revision == 2
            assert answer.limits.defaults.max_order_notional.value == "10.00000000"
            assert api.stack.risk.config.defaults.max_order_notional == Decimal("10")
            (record,) = journal_kinds(api.stack, "risk_limits")
            assert record[0] == 2 and record[2] == "api: desk cap"
            assert record[1]["defaults"] == {"max_order_notional": "10.00000000"}

            second = await orders.SubmitOrder(
                limit_buy("after-cap", bid - 50 * USDT), metadata=auth(TRADE_TOKEN)
            )
            assert second.order.status == orders_pb2.ORDER_STATUS_DENIED
            assert second.denial_reason == risk_pb2.DENIAL_REASON_NOTIONAL_ABOVE_MAX
            again = await risk.GetLimits(risk_pb2.GetLimitsRequest(), metadata=auth(READ_TOKEN))
            assert again.revision == 2

    run(main())


def test_update_limits_from_a_stale_revision_changes_nothing(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            risk = risk_pb2_grpc.RiskServiceStub(api.channel)
            update = risk_pb2.UpdateLimitsRequest(
                limits=notional_cap(10), expected_revision=1, reason="first"
            )
            await risk.UpdateLimits(update, metadata=auth(ADMIN_TOKEN))
            stale = risk_pb2.UpdateLimitsRequest(
                limits=notional_cap(5), expected_revision=1, reason="second, from old state"
            )
            # Repeating a successful call is refused too: it cannot apply twice.
            for request in (stale, update):
                call = risk.UpdateLimits(request, metadata=auth(ADMIN_TOKEN))
                assert await code_of(call) is grpc.StatusCode.FAILED_PRECONDITION
            assert api.stack.risk.config.defaults.max_order_notional == Decimal("10")
            assert len(journal_kinds(api.stack, "risk_limits")) == 1

    run(main())


def test_invalid_limits_are_refused_naming_the_field(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames) as api:
            risk = risk_pb2_grpc.RiskServiceStub(api.channel)
            negative = risk_pb2.RiskLimits(
                defaults=risk_pb2.InstrumentLimits(
                    max_position=types_pb2.Decimal(units=-1, precision=2)
                )
            )
            inverted = risk_pb2.RiskLimits(
                defaults=risk_pb2.InstrumentLimits(
                    min_order_notional=types_pb2.Amount(value="20"),
                    max_order_notional=types_pb2.Amount(value="10"),
                )
            )
            no_burst = risk_pb2.RiskLimits(
                order_rate=risk_pb2.RateLimit(rate_per_s=types_pb2.Decimal(units=5, precision=0))
            )
            twice = risk_pb2.RiskLimits(
                instruments=[
                    risk_pb2.InstrumentLimitsOverride(instrument=instrument)
                    for instrument in [types_pb2.InstrumentId(venue="binance", symbol="BTCUSDT")]
                    * 2
                ]
            )
            cases = [
                (negative, 1, "r", "limits.defaults.max_position: must be at least 0"),
                (inverted, 1, "r", "limits.defaults.min_order_notional: 20 is above"),
                (no_burst, 1, "r", "limits.order_rate.burst: must be at least 1"),
                (twice, 1, "r", "limits.instruments[1].instrument: binance.BTCUSDT given twice"),
                (None, 1, "r", "limits: required"),
                (notional_cap(10), 0, "r", "expected_revision: required"),
                (notional_cap(10), 1, " ", "reason: required"),
            ]
            for limits, revision, reason, message in cases:
                request = risk_pb2.UpdateLimitsRequest(
                    limits=limits, expected_revision=revision, reason=reason
                )
                call = risk.UpdateLimits(request, metadata=auth(ADMIN_TOKEN))
                try:
                    await call
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, message
                    assert (error.details() or "").startswith(message), error.details()
                else:
                    raise AssertionError(f"accepted: {message}")
            assert api.stack.risk.config == RiskConfig()
            assert journal_kinds(api.stack, "risk_limits") == []
            valid = risk_pb2.UpdateLimitsRequest(
                limits=notional_cap(10), expected_revision=1, reason="r"
            )
            for token in (READ_TOKEN, TRADE_TOKEN):
                call = risk.UpdateLimits(valid, metadata=auth(token))
                assert await code_of(call) is grpc.StatusCode.PERMISSION_DENIED

    run(main())


def test_updated_limits_and_switched_plugins_come_back_from_the_journal(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(
            tmp_path,
            frames,
            plugins=PluginHost(environ={}),
            strategy_plugins={"resting": PLUGIN},
            prepare=add_resting,
        ) as api:
            risk = risk_pb2_grpc.RiskServiceStub(api.channel)
            await risk.UpdateLimits(
                risk_pb2.UpdateLimitsRequest(
                    limits=notional_cap(10), expected_revision=1, reason="cap"
                ),
                metadata=auth(ADMIN_TOKEN),
            )
            plugins = plugins_pb2_grpc.PluginServiceStub(api.channel)
            await plugins.DisablePlugin(
                plugins_pb2.DisablePluginRequest(name=PLUGIN), metadata=auth(ADMIN_TOKEN)
            )

    run(main())
    restarted = TradingStack(tmp_path / "journal.tkj")
    try:
        add_resting(restarted)
        changes = RuntimeChanges(
            journal=restarted.journal,
            risk=restarted.risk,
            runner=restarted.runner,
            strategy_plugins={"resting": PLUGIN},
        )
        records = [(r.kind, r.payload) for r in restarted.journal.records_since(0)]
        assert changes.restore(records) == 2
        assert changes.limits_revision == 2
        assert restarted.risk.config.defaults.max_order_notional == Decimal("10")
        assert not changes.plugin_enabled(PLUGIN)
        restarted.runner.start()
        assert not restarted.runner.slots["resting"].started  # a disabled plug-in never starts
    finally:
        restarted.close()


class RestingConfig(Strategy.Config, frozen=True):
    venue: str = "binance"
    symbol: str = "BTCUSDT"


class Resting(Strategy):
    """Rest one small bid 100 USDT under the best bid, once; count book updates."""

    config: RestingConfig

    def on_start(self) -> None:
        self.books = 0
        self.placed = False

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.books += 1
        best = book.best_bid()
        if self.placed or best is None:
            return
        self.placed = True
        self.context.submit(
            OrderIntent(
                symbol="BTCUSDT",
                venue="binance",
                side=OrderSide.BUY,
                order_type=OrderType.LIMIT,
                quantity=100_000,
                price=best[0] - 100 * USDT,
            )
        )


def add_resting(stack: TradingStack) -> None:
    stack.add("resting", Resting, RestingConfig())


def test_disabling_a_plugin_stops_its_strategies_and_cancels_their_orders(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(
            tmp_path,
            frames[:2000],
            plugins=PluginHost(environ={}),
            strategy_plugins={"resting": PLUGIN},
            prepare=add_resting,
        ) as api:
            stack = api.stack
            strategy = stack.runner.slots["resting"].strategy
            assert isinstance(strategy, Resting)
            working = [o for o in stack.orders.open_orders() if o.strategy == "resting"]
            assert len(working) == 1
            plugins = plugins_pb2_grpc.PluginServiceStub(api.channel)
            admin = auth(ADMIN_TOKEN)
            answer = await plugins.DisablePlugin(
                plugins_pb2.DisablePluginRequest(name=PLUGIN), metadata=admin
            )
            assert answer.plugin.status == plugins_pb2.PLUGIN_STATUS_DISABLED
            assert answer.plugin.reason.startswith("disabled while running")
            assert not answer.restart_required
            (cancelling,) = [o for o in stack.orders.open_orders() if o.strategy == "resting"]
            assert cancelling.status is OrderStatus.PENDING_CANCEL
            assert journal_kinds(stack, "plugin_state") == [[PLUGIN, False, "through the API"]]

            books = strategy.books
            for frame in frames[2000:2500]:
                stack.feed.on_frame(frame)
            assert strategy.books == books  # no data while disabled
            assert stack.orders.orders["resting-1"].status is OrderStatus.CANCELED
            listed = await plugins.ListPlugins(
                plugins_pb2.ListPluginsRequest(), metadata=auth(READ_TOKEN)
            )
            (info,) = [p for p in listed.plugins if p.name == PLUGIN]
            assert info.status == plugins_pb2.PLUGIN_STATUS_DISABLED

            enabled = await plugins.EnablePlugin(
                plugins_pb2.EnablePluginRequest(name=PLUGIN), metadata=admin
            )
            assert enabled.plugin.status == plugins_pb2.PLUGIN_STATUS_ENABLED
            for frame in frames[2500:3000]:
                stack.feed.on_frame(frame)
            assert strategy.books > books  # data again
            # Enabling an enabled plug-in changes nothing and journals nothing.
            await plugins.EnablePlugin(plugins_pb2.EnablePluginRequest(name=PLUGIN), metadata=admin)
            assert len(journal_kinds(stack, "plugin_state")) == 2

    run(main())
