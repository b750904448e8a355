"""Run a built kernel on uvloop and report what it did."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

import uvloop

from kernel.live.session import SessionStats
from kernel.portfolio import MONEY_PRECISION
from kernel.service.builder import KernelApp, build
from kernel.service.components import TradingComponent
from kernel.service.config import KernelConfig
from tradekernel_sdk.fixedpoint import from_fixed

__all__ = ["format_summary", "run", "summary"]

log = logging.getLogger(__name__)


def summary(app: KernelApp) -> dict[str, Any]:
    """Return what the kernel did, as one JSON-ready object."""
    totals: dict[str, int] = {}
    replays = []
    for component in app.replays:
        report = component.report
        if report is None:
            continue
        data = report.as_json()
        replays.append(data)
        for key, value in data.items():
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and not key.endswith("_second")
            ):
                totals[key] = totals.get(key, 0) + value
    seconds = max((item["seconds"] for item in replays), default=0.0)
    market_events = sum(totals.get(key, 0) for key in ("book_updates", "quotes", "trades"))
    result: dict[str, Any] = {
        "run_seconds": round(time.perf_counter() - app.started_at, 3),
        "replay_seconds": seconds,
        "totals": totals,
        "market_events": market_events,
        "events_per_second": round(market_events / seconds) if seconds else 0,
        "bus_events": app.bus.published,
        "bus_handler_errors": app.bus.handler_errors,
        "replays": replays,
        "shutdown_reason": app.shutdown.reason,
    }
    if app.paper is not None and app.paper.venue is not None:
        result["paper"] = app.paper.venue.counters()
    trading = app.trading
    if trading is not None and trading.orders is not None and trading.context is not None:
        result["trading"] = _trading_summary(app, trading)
    if app.components is not None:
        result["components"] = app.components.report()
    live = {}
    for part in app.lifecycle.components:
        stats = getattr(part, "session_stats", None)
        if isinstance(stats, SessionStats):
            live[part.name.removeprefix("live:")] = stats.as_dict()
    if live:
        result["live"] = live
    if app.order_entries:
        result["order_entry"] = {part.venue: part.report() for part in app.order_entries}
    return result


def _money(value: int) -> str:
    return from_fixed(value, MONEY_PRECISION).rstrip("0").rstrip(".") or "0"


def _trading_summary(app: KernelApp, trading: TradingComponent) -> dict[str, Any]:
    orders = trading.orders
    context = trading.context
    risk = trading.risk
    assert orders is not None and context is not None and risk is not None
    snapshot = orders.portfolio.snapshot(context.marks())
    positions = {}
    for (venue, symbol), position in orders.portfolio.positions.items():
        positions[f"{venue}.{symbol}"] = position.instrument.size_text(position.quantity)
    fills = sum(1 for order in orders.orders.values() if order.filled_quantity)
    return {
        "orders": dict(orders.counts()),
        "orders_with_fills": fills,
        "paper_fills": app.paper.venue.fills if app.paper and app.paper.venue else 0,
        "denials": {reason.value: count for reason, count in risk.denials.items() if count},
        "risk_state": risk.state.value,
        "positions": positions,
        "pnl": {
            "realised": _money(snapshot.realised),
            "unrealised": _money(snapshot.unrealised),
            "fees": _money(snapshot.fees),
            "net": _money(snapshot.net),
        },
        "strategies": trading.runner.report() if trading.runner else {},
        "tick_to_order_ns": trading.probe.summary() if trading.probe else {},
        "journal_records": trading.journal.last_sequence if trading.journal else 0,
        "recovered_records": trading.recovered,
        "reconciled": trading.reconciled,
    }


def format_summary(data: dict[str, Any]) -> str:
    """Render :func:`summary` for a terminal."""
    totals = data["totals"]
    lines = [
        "",
        "tradekernel run summary",
        "-----------------------",
        f"frames            {totals.get('frames', 0):>12,}",
        f"book updates      {totals.get('book_updates', 0):>12,}",
        f"level updates     {totals.get('level_updates', 0):>12,}",
        f"quotes / trades   {totals.get('quotes', 0):>12,} / {totals.get('trades', 0):,}",
        f"resyncs           {totals.get('resyncs', 0):>12,}",
        f"gaps              {totals.get('gaps', 0):>12,}",
        f"oracle checks     {totals.get('oracle_checks', 0):>12,}"
        f"   mismatches {totals.get('oracle_mismatches', 0):,}",
        f"checksums         {totals.get('checksum_checks', 0):>12,}"
        f"   failures {totals.get('checksum_failures', 0):,}",
        f"crossed books     {totals.get('crossed_books', 0):>12,}",
        f"malformed frames  {totals.get('malformed_frames', 0):>12,}",
        f"market events     {data['market_events']:>12,}   ({data['events_per_second']:,}/s)",
        f"bus deliveries    {data['bus_events']:>12,}",
        f"replay time       {data['replay_seconds']:>12.3f} s",
        f"run time          {data['run_seconds']:>12.3f} s",
    ]
    for replay in data["replays"]:
        for stage, figures in replay.get("stage_latency_ns", {}).items():
            lines.append(
                f"{replay['venue']:<8} {stage:<8} p50 <= {figures['p50']:,} ns, "
                f"p99 <= {figures['p99']:,} ns ({figures['samples']:,} samples)"
            )
        for symbol, book in replay["books"].items():
            lines.append(
                f"{replay['venue']} {symbol}: {book['state']}, "
                f"{book['bid_levels']:,} bids / {book['ask_levels']:,} asks, "
                f"best {book['best_bid']} / {book['best_ask']}"
            )
    paper = data.get("paper")
    if paper:
        lines.append(
            "paper venue       " + ", ".join(f"{key} {value:,}" for key, value in paper.items())
        )
    trading = data.get("trading")
    if trading:
        lines.append(
            "orders            "
            + ", ".join(
                f"{status} {count:,}" for status, count in sorted(trading["orders"].items())
            )
        )
        lines.append(f"paper fills       {trading['paper_fills']:>12,}")
        denials = trading["denials"]
        lines.append(
            "risk denials      "
            + (", ".join(f"{reason} {count:,}" for reason, count in denials.items()) or "none")
            + f"   (state {trading['risk_state']})"
        )
        pnl = trading["pnl"]
        lines.append(
            f"PnL (quote)       realised {pnl['realised']}, unrealised {pnl['unrealised']}, "
            f"fees {pnl['fees']}, net {pnl['net']}"
        )
        for key, size in trading["positions"].items():
            lines.append(f"position          {key} {size}")
        for name, figures in trading["strategies"].items():
            state = (
                "QUARANTINED: " + figures["quarantine_reason"] if figures["quarantined"] else "ok"
            )
            lines.append(
                f"strategy {name:<12} {figures['callbacks']:,} callbacks, "
                f"{figures['errors']} errors, {figures['overruns']} overruns, {state}"
            )
        for stage, figures in trading["tick_to_order_ns"].items():
            if figures["count"]:
                lines.append(
                    f"tick-to-order {stage:<9} p50 {figures['p50'] / 1000:,.1f} us, "
                    f"p99 {figures['p99'] / 1000:,.1f} us ({figures['count']:,} orders)"
                )
        lines.append(
            f"journal           {trading['journal_records']:,} records "
            f"({trading['recovered_records']:,} recovered at start)"
        )
    for venue, figures in data.get("live", {}).items():
        lines.append(
            f"live {venue:<12} {figures['connects']:,} connects, "
            f"{figures['disconnects']:,} disconnects, {figures['frames']:,} frames"
        )
    for venue, figures in data.get("order_entry", {}).items():
        state = "running" if figures["running"] else "stopped"
        if "reconciliations" in figures:
            state += (
                f", {figures['stream_connects']:,} stream connects, "
                f"{figures['reconciliations']:,} reconciliations (last: "
                f"{figures['last_reconciliation'] or 'none'})"
            )
        lines.append(f"orders {venue:<10} {state}, {figures['refused']:,} refused while down")
    for name, figures in data.get("components", {}).items():
        reason = figures["down_reason"]
        state = figures["state"] + (f" ({reason})" if reason else "")
        lines.append(
            f"component {name:<11} {state}: {figures['sessions']:,} sessions, "
            f"{figures['intents']:,} intents, {figures['refused']:,} refused, "
            f"{figures['dropped']:,} dropped, {figures['downs']:,} downs"
        )
    lines.append(f"stopped because   {data['shutdown_reason']}")
    return "\n".join(lines)


def run(
    config: KernelConfig,
    *,
    json_summary: bool = False,
    progress: bool = True,
    out: TextIO | None = None,
) -> int:
    """Build and run the kernel until its work is done or a signal arrives; return an exit code.

    Exit status 1 means a replay found a book disagreeing with an oracle the
    data carries (or a sequence gap); 0 means everything verified.
    """
    out = out or sys.stdout
    app = build(config, progress=progress)
    uvloop.run(app.lifecycle.run())
    data = summary(app)
    if json_summary:
        out.write(json.dumps(data) + "\n")
    else:
        out.write(format_summary(data) + "\n")
    mismatched = any(
        component.report is not None and component.report.mismatches for component in app.replays
    )
    failed = app.shutdown.reason.endswith("failed") or " failed: " in app.shutdown.reason
    return 1 if mismatched or failed or app.lifecycle.stop_errors else 0
