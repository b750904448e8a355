"""The client ``bench.api_stream`` measures: read one trade stream, print what arrived and when.

Run as ``python -m bench._api_stream_client ADDRESS TOKEN EVENTS MAX_BATCH`` in
its own process (``MAX_BATCH`` 1: one trade a message). Each trade's
``ts_recv`` is the server's ``CLOCK_MONOTONIC`` when it published the trade
(the same clock in every process on the machine), so the client's clock at
receipt minus it is the event's latency. Prints one JSON
object: events received, seconds from the first to the last, and the median
and p99 latency in nanoseconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc

from tradekernel_sdk.proto.tradekernel.v1 import market_data_pb2, market_data_pb2_grpc, types_pb2


async def receive(address: str, token: str, events: int, max_batch: int) -> dict[str, float]:
    latencies: list[int] = []
    first = last = 0
    async with grpc.aio.insecure_channel(address) as channel:
        market = market_data_pb2_grpc.MarketDataServiceStub(channel)
        request = market_data_pb2.StreamTradesRequest(
            instruments=[types_pb2.InstrumentId(venue="binance", symbol="BTCUSDT")],
            max_batch=max_batch,
        )
        call = market.StreamTrades(request, metadata=(("authorization", f"Bearer {token}"),))
        print("subscribed", flush=True)  # the server starts publishing on this line
        clock = time.monotonic_ns
        append = latencies.append
        messages = 0
        async for message in call:
            now = clock()
            messages += 1
            if message.trades:
                for trade in message.trades:
                    append(now - trade.ts_recv)
            else:
                append(now - message.trade.ts_recv)
            if not first:
                first = now
            last = now
            if len(latencies) >= events:
                break
        call.cancel()
    ordered = sorted(latencies)
    return {
        "events": len(ordered),
        "messages": messages,
        "seconds": (last - first) / 1e9,
        "p50_ns": ordered[len(ordered) // 2],
        "p99_ns": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


if __name__ == "__main__":
    address, token, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(receive(address, token, count, batch))), flush=True)
