"""``tick_to_order``: from a raw frame entering the feed to the order reaching the venue.

The kernel is built by the service builder from a configuration, exactly as
``tradekernel run`` builds it: the Binance spot recordings replayed at full
speed through the feed and books, the first-party ``imbalance`` strategy on
BTCUSDT and ETHUSDT, every risk check configured (limits wide enough that
orders pass them: a denied order stops at the risk stage), the journal with
batched fsync, the paper venue. Every order the strategies send is timed by
stage with ``perf_counter_ns`` stamps (:class:`kernel.metrics.TickToOrder`):

* ``feed``: frame arrives → parsed, synced, applied, published → strategy callback starts
* ``strategy``: the strategy's own work until it submits
* ``risk``: the risk engine's checks
* ``journal``: the journal append and the hand-over of the record to the OS
* ``route``: order bookkeeping and the send to the venue's endpoint

Percentiles are exact (every order is kept); runs are separate kernels, the
figures of the median run (by total p50) are reported with every run's p50 and
p99 beside them. The output says whether the compiled helpers of
``kernel/book/_accel.c`` were in use (``TRADEKERNEL_PURE_PYTHON=1`` measures
the pure-Python path).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from bench.common import Context, fmt_int, fmt_ns, median, note, table
from kernel.book.accel import COMPILED
from kernel.service.builder import build
from kernel.service.config import parse_config

NAME = "tick_to_order"
_GOAL_P50_NS = 50_000
_GOAL_P99_NS = 250_000


def _config(paths: list[Path], state_dir: Path) -> dict[str, Any]:
    strategies = {}
    for symbol, lot in (("BTCUSDT", 1_000), ("ETHUSDT", 10_000)):
        strategies[f"imbalance_{symbol.lower()}"] = {
            "strategy": "imbalance",
            "venue": "binance",
            "symbol": symbol,
            "tick": 1_000_000,
            "lot": lot,
            "quantity": 100 * lot,
            "max_position": 10_000 * lot,
            "allow_short": True,
            "depth": 5,
            "threshold_bps": 4000,
            "cooldown_ns": 200_000_000,
        }
    return {
        "kernel": {"state_dir": str(state_dir)},
        "metrics": {"enabled": False},
        "logging": {"level": "WARNING"},
        "replay": [{"venue": "binance", "files": [str(path) for path in paths], "verify": True}],
        "paper": {"market_venue": "binance", "latency_ms": 1.0},
        "journal": {"fsync": "batch"},
        "strategies": strategies,
        "risk": {
            "max_gross_exposure": "10000000",
            "max_open_orders_per_venue": 100,
            "self_trade_prevention": True,
            "max_daily_loss": "1000000",
            "max_drawdown": "1000000",
            "order_rate": {"rate_per_s": 1000, "burst": 1000},
            "defaults": {
                "min_order_notional": "1",
                "max_order_notional": "1000000",
                "max_open_orders": 50,
                "price_band_bps": 500,
                "max_position": "1000",
            },
        },
    }


def _run_once(paths: list[Path]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as folder:
        config = parse_config(_config(paths, Path(folder)))
        app = build(config, progress=False)
        uvloop.run(app.lifecycle.run())
        trading = app.trading
        assert trading is not None and trading.probe is not None and trading.risk is not None
        orders = trading.orders
        assert orders is not None
        return {
            "stages": trading.probe.summary(),
            "orders": dict(orders.counts()),
            "denials": {key.value: value for key, value in trading.risk.denials.items() if value},
            "frames": sum(feed.stats.frames for feed in app.feeds.values()),
        }


def run(ctx: Context) -> dict[str, Any]:
    """Replay the spot recordings through the trading kernel; report tick-to-order by stage."""
    paths = [path for files in ctx.data.spot.values() for path in files]
    print(
        f"\n[{NAME}] {len(paths)} spot files through feed, imbalance strategy, risk, journal, "
        f"paper venue; {ctx.runs} kernels"
    )
    path = "compiled (kernel/book/_accel.c)" if COMPILED else "pure Python"
    note(f"level conversion, book apply and depth views: {path}")
    logging.getLogger("kernel").setLevel(logging.WARNING)
    runs = [_run_once(paths) for _ in range(ctx.runs)]
    runs.sort(key=lambda result: result["stages"]["total"]["p50"])
    chosen = runs[len(runs) // 2]
    stages = chosen["stages"]
    rows = [
        [
            stage,
            fmt_int(figures["count"]),
            fmt_ns(figures["p50"]),
            fmt_ns(figures["p99"]),
            fmt_ns(figures["max"]),
        ]
        for stage, figures in stages.items()
    ]
    table(
        f"{NAME}: frame -> venue, per order (median run of {len(runs)})",
        ["stage", "orders", "p50", "p99", "max"],
        rows,
    )
    total = stages["total"]
    p50s = [result["stages"]["total"]["p50"] for result in runs]
    p99s = [result["stages"]["total"]["p99"] for result in runs]
    note(f"every run's total p50: {', '.join(fmt_ns(v) for v in sorted(p50s))}")
    note(f"every run's total p99: {', '.join(fmt_ns(v) for v in sorted(p99s))}")
    note(f"orders by status: {chosen['orders']}; risk denials: {chosen['denials'] or 'none'}")
    met_p50 = total["p50"] <= _GOAL_P50_NS
    met_p99 = total["p99"] <= _GOAL_P99_NS
    note(
        f"total p50 {fmt_ns(total['p50'])} (goal <= 50 us: {'met' if met_p50 else 'MISSED'}), "
        f"p99 {fmt_ns(total['p99'])} (goal <= 250 us: {'met' if met_p99 else 'MISSED'})"
    )
    return {
        "stages_ns": stages,
        "runs_total_p50_ns": p50s,
        "runs_total_p99_ns": p99s,
        "median_of_run_p50_ns": median([float(v) for v in p50s]),
        "orders": chosen["orders"],
        "denials": chosen["denials"],
        "frames": chosen["frames"],
        "compiled_helpers": COMPILED,
        "goals": {
            "p50_ns": _GOAL_P50_NS,
            "p99_ns": _GOAL_P99_NS,
            "p50_met": met_p50,
            "p99_met": met_p99,
        },
    }
