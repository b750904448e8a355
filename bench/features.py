"""``features``: what updating every default feature costs per event, on real recordings.

Each recording is replayed through the kernel's Binance feed onto the bus; a
subscriber times, event by event, the update of the instrument's
``InstrumentFeatures`` (every feature of ``DEFAULT_FEATURE_SET``, reading the
feed's live book) with ``perf_counter_ns`` — the work the feature engine does
per event, without its bookkeeping. Percentiles are nearest-rank over all
events of a run; the figures are those of the median run by p50.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from bench.common import Context, fmt_int, fmt_ns, load_frames, percentile, table
from kernel.adapters.binance import BinanceFeed
from kernel.bus import Bus
from tradekernel_models.features import DEFAULT_FEATURE_SET, FEATURES
from tradekernel_sdk.features import InstrumentFeatures
from tradekernel_sdk.types import BookDelta, BookSnapshot, Trade

NAME = "features"


def _one_run(frames: list[Any], market: str) -> dict[str, list[int]]:
    bus = Bus()
    feed = BinanceFeed(bus, "spot" if market == "spot" else "usdm")
    instruments: dict[str, InstrumentFeatures] = {}
    costs: dict[str, list[int]] = {"book": [], "trade": []}
    clock = time.perf_counter_ns

    def routed(symbol: str) -> InstrumentFeatures:
        found = instruments.get(symbol)
        if found is None:
            found = instruments[symbol] = InstrumentFeatures(
                feed.venue,
                symbol,
                DEFAULT_FEATURE_SET.build(FEATURES),
                DEFAULT_FEATURE_SET.bar_interval_ns,
            )
        return found

    def on_book(update: BookDelta | BookSnapshot) -> None:
        features = routed(update.symbol)
        book = feed.book(update.symbol)
        assert book is not None
        started = clock()
        features.on_book(update, book)
        costs["book"].append(clock() - started)

    def on_trade(trade: Trade) -> None:
        features = routed(trade.symbol)
        started = clock()
        features.on_trade(trade)
        costs["trade"].append(clock() - started)

    bus.subscribe("data.book.*.*", on_book)
    bus.subscribe("data.snapshot.*.*", on_book)
    bus.subscribe("data.trade.*.*", on_trade)
    gc.collect()
    gc.disable()
    try:
        for frame in frames:
            feed.on_frame(frame)
    finally:
        gc.enable()
    return costs


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its table and return its figures."""
    print(f"\n[features] every default feature per event, {ctx.runs} runs; {ctx.data.describe()}")
    figures: dict[str, Any] = {}
    rows = []
    for market, symbols in ctx.data.markets().items():
        for symbol, paths in symbols.items():
            frames = load_frames(paths, ctx.line_limit)
            runs = [_one_run(frames, market) for _ in range(ctx.runs)]
            runs.sort(key=lambda costs: percentile(costs["book"] + costs["trade"], 50))
            costs = runs[len(runs) // 2]
            every = costs["book"] + costs["trade"]
            entry = {
                kind: {
                    "events": len(values),
                    "p50_ns": percentile(values, 50),
                    "p99_ns": percentile(values, 99),
                }
                for kind, values in (("all", every), *costs.items())
                if values
            }
            figures[f"{market} {symbol}"] = entry
            rows.append(
                [
                    f"{market} {symbol}",
                    fmt_int(len(every)),
                    *(
                        f"{fmt_ns(entry[kind]['p50_ns'])} / {fmt_ns(entry[kind]['p99_ns'])}"
                        for kind in ("all", "book", "trade")
                    ),
                ]
            )
    table(
        f"features: ns per event, p50 / p99 ({len(FEATURES)} features, "
        f"{len(DEFAULT_FEATURE_SET.specs)} in the default set)",
        ["recording", "events", "all events", "book updates", "trades"],
        rows,
    )
    print("  a trade that closes a one-second bar also updates the seven bar indicators")
    return figures
