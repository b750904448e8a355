"""Many API clients in one process: streams of books, quotes, trades and order events, plus orders.

Run by ``test_load.py`` in a process of its own, so the clients' work does not
share the kernel's interpreter::

    python load_clients.py ADDRESS --clients 50 --seconds 30 --orders-per-s 10

The token comes from ``TRADEKERNEL_API_TOKEN``. Each client opens its own
channel (its own connection) and four streams; one more submits limit orders
below the bid and cancels each at once. At the end one JSON object goes to
stdout: messages received by stream kind, streams that ended early and why,
orders placed and cancelled, and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import grpc

from tradekernel_sdk.proto.tradekernel.v1 import (
    market_data_pb2,
    market_data_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    types_pb2,
)

INSTRUMENTS = [
    types_pb2.InstrumentId(venue="binance", symbol="BTCUSDT"),
    types_pb2.InstrumentId(venue="binance", symbol="ETHUSDT"),
]


class Tally:
    """What every client saw, summed."""

    def __init__(self) -> None:
        self.messages: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()
        self.orders: Counter[str] = Counter()
        self.errors: list[str] = []


async def drain(kind: str, open_stream: Any, metadata: Any, deadline: float, tally: Tally) -> None:
    """Read one stream until the deadline, reopening it if the server ends it (as it may)."""
    while time.monotonic() < deadline:
        call = open_stream(metadata=metadata)
        try:
            async for _ in call:
                tally.messages[kind] += 1
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.CANCELLED:
                return
            tally.ended[f"{kind}:{error.code().name}"] += 1
            if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
                tally.errors.append(f"{kind}: {error.code().name}: {error.details()}")
                return
        else:
            tally.ended[f"{kind}:OK"] += 1


async def stream_client(
    address: str, metadata: Any, *, seconds: float, throttle_ms: int, tally: Tally
) -> None:
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        market = market_data_pb2_grpc.MarketDataServiceStub(channel)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        books = market_data_pb2.StreamBooksRequest(
            instruments=INSTRUMENTS, depth=10, throttle_ms=throttle_ms
        )
        streams = {
            "books": lambda **kw: market.StreamBooks(books, **kw),
            "quotes": lambda **kw: market.StreamQuotes(
                market_data_pb2.StreamQuotesRequest(instruments=INSTRUMENTS), **kw
            ),
            "trades": lambda **kw: market.StreamTrades(
                market_data_pb2.StreamTradesRequest(instruments=INSTRUMENTS), **kw
            ),
            "order_events": lambda **kw: orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(), **kw
            ),
        }
        tasks = [
            asyncio.create_task(drain(kind, opener, metadata, deadline, tally))
            for kind, opener in streams.items()
        ]
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def order_flow(
    address: str, metadata: Any, seconds: float, per_second: float, tally: Tally
) -> None:
    """Submit a limit buy 0.2% under the bid, cancel it, ``per_second`` times a second."""
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        market = market_data_pb2_grpc.MarketDataServiceStub(channel)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        number = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            number += 1
            try:
                book = await market.GetBookSnapshot(
                    market_data_pb2.GetBookSnapshotRequest(instrument=INSTRUMENTS[0], depth=1),
                    metadata=metadata,
                    timeout=5,
                )
                bid = book.snapshot.bids[0].price
                price = bid.units - bid.units // 500 // 1_000_000 * 1_000_000  # on the 0.01 tick
                placed = await orders.SubmitOrder(
                    orders_pb2.SubmitOrderRequest(
                        order=orders_pb2.OrderRequest(
                            client_order_id=f"load-{os.getpid()}-{number}",
                            venue="binance",
                            symbol="BTCUSDT",
                            side=orders_pb2.ORDER_SIDE_BUY,
                            order_type=orders_pb2.ORDER_TYPE_LIMIT,
                            quantity=types_pb2.Decimal(units=100_000, precision=8),
                            price=types_pb2.Decimal(units=price, precision=bid.precision),
                        )
                    ),
                    metadata=metadata,
                    timeout=5,
                )
                tally.orders[orders_pb2.OrderStatus.Name(placed.order.status)] += 1
                if placed.order.status != orders_pb2.ORDER_STATUS_DENIED:
                    await orders.CancelOrder(
                        orders_pb2.CancelOrderRequest(client_order_id=placed.order.client_order_id),
                        metadata=metadata,
                        timeout=5,
                    )
                    tally.orders["cancel_sent"] += 1
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                    tally.orders["book_not_valid"] += 1  # a book resynchronising
                else:
                    tally.errors.append(f"orders: {error.code().name}: {error.details()}")
            await asyncio.sleep(max(0.0, 1 / per_second - (time.monotonic() - started)))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    metadata = (("authorization", f"Bearer {os.environ['TRADEKERNEL_API_TOKEN']}"),)
    tally = Tally()
    clients = [
        # A fifth of the clients take every book delta, the rest conflated snapshots.
        stream_client(
            args.address,
            metadata,
            seconds=args.seconds,
            throttle_ms=0 if index % 5 == 0 else 100,
            tally=tally,
        )
        for index in range(args.clients)
    ]
    flow = order_flow(args.address, metadata, args.seconds, args.orders_per_s, tally)
    await asyncio.gather(*clients, flow)
    return {
        "messages": dict(tally.messages),
        "ended": dict(tally.ended),
        "orders": dict(tally.orders),
        "errors": tally.errors[:20],
    }


if __name__ == "__main__":
    # The clients stand in for other machines: on this box they must not take the
    # kernel's core when both want one, or the test measures the scheduler.
    os.nice(19)
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--orders-per-s", type=float, default=10.0)
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
