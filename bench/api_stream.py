"""``api_stream``: events per second through one gRPC server stream to one client, and latency.

The kernel's API server runs in this process on uvloop, as in the service;
the client (``bench._api_stream_client``) runs in another process and reads
one ``StreamTrades`` stream over loopback, asking for batches of up to
``_MAX_BATCH`` trades a message; the same stream with one trade a message is
measured beside it (on a quarter of the trades: it is much slower). Trades are published on the
kernel's bus as a feed publishes them, as fast as the stream takes them: the
publisher keeps at most ``_WINDOW`` trades ahead of what the stream has handed
to gRPC, below the client queue's 1024, so nothing is dropped and the rate is
what one stream sustains. Latency is publish → received by the client, on
``CLOCK_MONOTONIC``, which both processes share; at full rate it includes the
time a trade waits in the window.

The peer, timed in the same run: the same trades published on the bus to one
in-process subscriber (what a strategy receives), with the same latency
measure. The ratio is bus rate over stream rate.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import uvloop

from bench.common import Context, fmt_int, fmt_ns, fmt_rate, table
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.api import ApiParts, ApiServer
from kernel.bus import Bus, topics
from kernel.trading import MarketData, VenueMap
from tradekernel_sdk.types import AggressorSide, Trade

NAME = "api_stream"

_EVENTS = 200_000
_QUICK_EVENTS = 40_000
_WINDOW = 512
_TOKEN = "bench-api-stream"
_TOPIC = topics.trade("binance", "BTCUSDT")
_GOAL_PER_S = 50_000
_MAX_BATCH = 256
_BATCHED = f"gRPC stream, max_batch {_MAX_BATCH}"


def _trade(number: int) -> Trade:
    return Trade(
        "binance",
        "BTCUSDT",
        6_000_000_000_000 + number % 1000 * 1_000_000,
        100_000,
        AggressorSide.BUY,
        str(number),
        number,
        time.monotonic_ns(),
    )


async def _stream_run(events: int, max_batch: int) -> dict[str, Any]:
    bus = Bus()
    btc = KNOWN_INSTRUMENTS["binance"]["BTCUSDT"]
    parts = ApiParts(
        bus=bus,
        market=MarketData(books={}, states={}, instruments={}),
        venues=VenueMap({"binance": "paper"}),
        instruments=lambda: [btc],
    )
    server = ApiServer(parts, tokens={_TOKEN: frozenset({"read"})}, grace_s=0.5)
    port = await server.start()
    stats = server.market_data.trade_stats
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._api_stream_client",
        f"127.0.0.1:{port}",
        _TOKEN,
        str(events),
        str(max_batch),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert client.stdout is not None
        await asyncio.wait_for(client.stdout.readline(), 30)  # "subscribed"
        while stats.streams < 1:
            await asyncio.sleep(0.001)
        publish = bus.publish
        published = 0
        while published < events:
            ahead = published - stats.sent
            for _ in range(min(_WINDOW - ahead, events - published)):
                publish(_TOPIC, _trade(published))
                published += 1
            await asyncio.sleep(0)
        line = await asyncio.wait_for(client.stdout.readline(), 120)
        await client.wait()
    finally:
        if client.returncode is None:
            client.kill()
        await server.stop(0.5)
    result: dict[str, Any] = json.loads(line)
    result["dropped"] = stats.dropped
    return result


def _bus_run(events: int) -> dict[str, Any]:
    bus = Bus()
    latencies: list[int] = []
    clock = time.monotonic_ns
    append = latencies.append

    def on_trade(trade: Trade) -> None:
        append(clock() - trade.ts_recv)

    bus.subscribe(_TOPIC, on_trade)
    publish = bus.publish
    started = time.perf_counter()
    for number in range(events):
        publish(_TOPIC, _trade(number))
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "events": len(ordered),
        "seconds": seconds,
        "p50_ns": ordered[len(ordered) // 2],
        "p99_ns": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "dropped": 0,
    }


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its table and return its figures."""
    events = _QUICK_EVENTS if ctx.quick else _EVENTS
    print(f"\n[api_stream] {fmt_int(events)} trades per run, {ctx.runs} runs, interleaved")
    batched, single, bus_runs = [], [], []
    for _ in range(ctx.runs):
        batched.append(uvloop.run(_stream_run(events, _MAX_BATCH)))
        single.append(uvloop.run(_stream_run(events // 4, 1)))
        bus_runs.append(_bus_run(events))
    figures: dict[str, Any] = {}
    rows = []
    paths = (
        (_BATCHED, batched),
        ("gRPC stream, one trade a message", single),
        ("bus, in process", bus_runs),
    )
    for name, runs in paths:
        rates = [item["events"] / item["seconds"] for item in runs]
        figures[name] = {
            "events_per_s": statistics.median(rates),
            "p50_ns": statistics.median(item["p50_ns"] for item in runs),
            "p99_ns": statistics.median(item["p99_ns"] for item in runs),
            "dropped": sum(item["dropped"] for item in runs),
            "runs": runs,
        }
        rows.append(
            [
                name,
                fmt_rate(figures[name]["events_per_s"]),
                fmt_ns(figures[name]["p50_ns"]),
                fmt_ns(figures[name]["p99_ns"]),
                fmt_int(figures[name]["dropped"]),
            ]
        )
    stream_rate = figures[_BATCHED]["events_per_s"]
    ratio = figures["bus, in process"]["events_per_s"] / stream_rate
    table(
        f"api_stream: one trade stream (median of {ctx.runs} runs)",
        ["path", "events/s", "latency p50", "latency p99", "dropped"],
        rows,
    )
    verdict = "meets" if stream_rate >= _GOAL_PER_S else "misses"
    print(
        f"  bus/stream rate ratio {ratio:.1f}x; the stream {verdict} the goal of "
        f"{fmt_int(_GOAL_PER_S)} events/s; latency at full rate includes up to "
        f"{_WINDOW} trades waiting"
    )
    return {
        "events_per_run": events,
        "window": _WINDOW,
        "goal_events_per_s": _GOAL_PER_S,
        "max_batch": _MAX_BATCH,
        "bus_to_stream_ratio": ratio,
        "paths": figures,
    }
