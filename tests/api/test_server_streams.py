"""Book streams under a slow client, and random bytes sent to unary methods."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_api import BTC, READ_TOKEN, TRADE_TOKEN, auth, frames, run, running

from kernel.adapters.base import RawFrame
from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
)

__all__ = ["frames"]  # the fixture, shared with test_server_api


def test_stream_books_snapshot_then_deltas(tmp_path: Path, frames: list[RawFrame]) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:3000]) as api:
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            stream = market.StreamBooks(
                market_data_pb2.StreamBooksRequest(instruments=[BTC], depth=10),
                metadata=auth(READ_TOKEN),
            )
            first = await stream.read()
            assert first.WhichOneof("event") == "snapshot"
            assert len(first.snapshot.bids) == 10
            for frame in frames[3000:3200]:
                api.stack.feed.on_frame(frame)
            second = await asyncio.wait_for(stream.read(), 5)
            assert second.WhichOneof("event") in {"delta", "snapshot"}
            stream.cancel()

    run(main())


def test_a_client_that_never_reads_never_blocks_the_bus(
    tmp_path: Path, frames: list[RawFrame]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:2000]) as api:
            api.server.market_data.max_queued = 64  # small, so 2000 frames overflow it
            market = market_data_pb2_grpc.MarketDataServiceStub(api.channel)
            stream = market.StreamBooks(
                market_data_pb2.StreamBooksRequest(instruments=[BTC]), metadata=auth(READ_TOKEN)
            )
            stats = api.server.market_data.stats
            for _ in range(200):  # wait for the server to subscribe; never read
                if stats.streams:
                    break
                await asyncio.sleep(0.01)
            assert stats.streams == 1
            started = time.perf_counter()
            for index, frame in enumerate(frames[2000:]):
                api.stack.feed.on_frame(frame)
                if index % 200 == 0:
                    await asyncio.sleep(0)  # let the server run, as the real loop would
            elapsed = time.perf_counter() - started
            assert stats.dropped > 0
            assert stats.sent < 2000
            assert elapsed < 30
            status = await kernel_pb2_grpc.KernelServiceStub(api.channel).GetStatus(
                kernel_pb2.GetStatusRequest(), metadata=auth(READ_TOKEN)
            )
            assert status.books  # still serving
            stream.cancel()

    run(main())


UNARY_METHODS = [
    "/tradekernel.v1.OrderService/SubmitOrder",
    "/tradekernel.v1.MarketDataService/GetBookSnapshot",
    "/tradekernel.v1.RiskService/Halt",
    "/tradekernel.v1.OrderService/ListOrders",
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payloads=st.lists(st.tuples(st.sampled_from(UNARY_METHODS), st.binary(max_size=256))))
def test_random_bytes_never_crash_the_server(
    tmp_path: Path, frames: list[RawFrame], payloads: list[tuple[str, bytes]]
) -> None:
    async def main() -> None:
        async with running(tmp_path, frames[:500]) as api:
            for method, payload in payloads:
                call = api.channel.unary_unary(
                    method, request_serializer=None, response_deserializer=None
                )
                try:
                    await call(payload, metadata=auth(TRADE_TOKEN), timeout=5)
                except grpc.aio.AioRpcError as error:
                    # What parses and validates may also be answered NOT_FOUND (an
                    # unknown instrument) or FAILED_PRECONDITION; never UNKNOWN.
                    assert error.code() in {
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.NOT_FOUND,
                        grpc.StatusCode.FAILED_PRECONDITION,
                        grpc.StatusCode.OUT_OF_RANGE,
                        grpc.StatusCode.ALREADY_EXISTS,
                    }, (method, payload, error.code(), error.details())
            version = await kernel_pb2_grpc.KernelServiceStub(api.channel).GetVersion(
                kernel_pb2.GetVersionRequest(), metadata=auth(READ_TOKEN)
            )
            assert version.api_version == "v1"

    run(main())
