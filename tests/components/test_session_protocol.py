"""The session as any language would speak it: raw messages from the generated stubs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from component_harness import link_to
from trading_stack import TradingStack

from kernel.service.config import ComponentSpec
from tradekernel_sdk.proto.tradekernel.v1 import (
    components_pb2,
    components_pb2_grpc,
    orders_pb2,
    types_pb2,
)


def intent(**changes: Any) -> orders_pb2.OrderIntent:
    """Return a limit buy of 0.001 BTC at 50,000 USDT (8 decimals), with ``changes``."""
    fields: dict[str, Any] = {
        "venue": "binance",
        "symbol": "BTCUSDT",
        "side": orders_pb2.ORDER_SIDE_BUY,
        "order_type": orders_pb2.ORDER_TYPE_LIMIT,
        "quantity": types_pb2.Decimal(units=1, precision=3),
        "price": types_pb2.Decimal(units=50_000, precision=0),
        "time_in_force": orders_pb2.TIME_IN_FORCE_IOC,
    }
    return orders_pb2.OrderIntent(**{**fields, **changes})


COMMANDS = [
    components_pb2.SessionResponse(request_id="r1", order_intent=intent()),
    components_pb2.SessionResponse(request_id="r1", order_intent=intent()),  # resent
    components_pb2.SessionResponse(
        request_id="r2", order_intent=intent(quantity=types_pb2.Decimal(units=1, precision=12))
    ),
    components_pb2.SessionResponse(
        request_id="r3", order_intent=intent(side=orders_pb2.ORDER_SIDE_UNSPECIFIED)
    ),
    components_pb2.SessionResponse(order_intent=intent()),  # no request id
    components_pb2.SessionResponse(
        request_id="r4", order_intent=intent(order_type=orders_pb2.ORDER_TYPE_MARKET)
    ),
    components_pb2.SessionResponse(
        request_id="r5", cancel=components_pb2.CancelIntent(client_order_id="someone-else-1")
    ),
]


class RawStrategy(components_pb2_grpc.ComponentServiceServicer):
    """Sends every command in :data:`COMMANDS` at the start and keeps what the kernel answers."""

    def __init__(self) -> None:
        self.results: list[components_pb2.CommandResult] = []
        self.done = asyncio.Event()

    async def Describe(self, request: Any, context: Any) -> components_pb2.DescribeResponse:
        return components_pb2.DescribeResponse(
            name="raw", version="1", kind=components_pb2.COMPONENT_KIND_STRATEGY, api_version="v1"
        )

    async def Session(self, request_iterator: Any, context: Any) -> None:  # type: ignore[override]
        first = await context.read()
        assert first.sequence == 1 and first.HasField("start")
        for command in COMMANDS:
            await context.write(command)
        while len(self.results) < len(COMMANDS):
            request = await context.read()
            if request is grpc.aio.EOF:
                return
            if request.HasField("command_result"):
                self.results.append(request.command_result)
            await context.write(
                components_pb2.SessionResponse(
                    heartbeat=components_pb2.Heartbeat(last_sequence=request.sequence)
                )
            )
        self.done.set()
        while await context.read() is not grpc.aio.EOF:
            pass


def test_every_command_is_answered_resent_intents_place_nothing_and_bad_ones_say_why(
    tmp_path: Path,
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")

    async def main() -> None:
        servicer = RawStrategy()
        server = grpc.aio.server()
        components_pb2_grpc.add_ComponentServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        link = link_to(stack, ComponentSpec(name="raw", endpoint=f"127.0.0.1:{port}"))
        link.start()
        try:
            async with asyncio.timeout(10):
                await servicer.done.wait()
        finally:
            await link.stop()
            await server.stop(grace=0.5)
        answers = {(r.request_id, r.client_order_id, r.error) for r in servicer.results}
        assert answers == {
            ("r1", "raw-r1", ""),
            ("r2", "", "order_intent.quantity: has more than 8 decimals"),
            ("r3", "", "order_intent.side: required"),
            ("", "", "order_intent: request_id is required"),
            ("r4", "", "order_intent: a market order carries no price"),
            ("r5", "", "cancel: 'someone-else-1' is not an order of raw"),
        }
        assert [r.request_id for r in servicer.results].count("r1") == 2
        assert [order.client_order_id for order in stack.orders.orders.values()] == ["raw-r1"]
        assert link.stats.refused == 5 and link.stats.intents == 1
        stack.close()

    asyncio.run(main())
