"""Tick-to-order counts orders strategies place on a frame, never orders placed through the API."""

from __future__ import annotations

from pathlib import Path

from test_runtime_changes import USDT, Resting, RestingConfig
from test_server_api import TRADE_TOKEN, auth, best_bid, frames, limit_buy, run, running

from kernel.adapters.base import RawFrame
from kernel.metrics import TickToOrder
from tradekernel_sdk.proto.tradekernel.v1 import orders_pb2_grpc

__all__ = ["frames"]


def test_api_orders_between_frames_are_not_tick_to_order_samples(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    probe = TickToOrder()

    def add_probed_strategy(stack: object) -> None:
        stack.feed.probe = probe  # type: ignore[attr-defined]
        stack.orders.probe = probe  # type: ignore[attr-defined]
        stack.runner.probe = probe  # type: ignore[attr-defined]
        stack.add("resting", Resting, RestingConfig())  # type: ignore[attr-defined]

    async def main() -> None:
        async with running(tmp_path, frames[:1000], prepare=add_probed_strategy) as api:
            assert len(probe.samples["total"]) == 1  # the strategy's one resting bid
            orders = orders_pb2_grpc.OrderServiceStub(api.channel)
            for number in range(5):
                request = limit_buy(f"api-{number}", best_bid(api.stack) - 200 * USDT)
                await orders.SubmitOrder(request, metadata=auth(TRADE_TOKEN))
            assert len(api.stack.orders.open_orders()) == 6
            assert len(probe.samples["total"]) == 1

    run(main())
