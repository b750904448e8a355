"""``remote``: a book event's round trip to an out-of-process component and back.

One kernel stack (real Binance spot frames through the feed and books, risk,
journal, paper venue) and one strategy that answers every book update with an
order intent. Per book update:

* ``remote``: the strategy is served by ``tradekernel_sdk.remote`` in a child
  process; the time runs from the frame entering the feed to the intent being
  read back by the kernel (bus → queue → gRPC over loopback → the component
  rebuilds its book and decides → gRPC back);
* ``in-process``: the same strategy under the kernel's strategy runner; the
  time runs from the frame entering the feed to the strategy's submit.

Events are sent one at a time (the next frame goes in once the component has
caught up), so the figures are latencies, not queueing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.common import Context, fmt_int, fmt_ns, load_frames, note, percentile, table
from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS, BinanceFeed
from kernel.bus import Bus, topics
from kernel.components import ComponentLink, sdk_command
from kernel.journal import Journal
from kernel.orders import OrderManager
from kernel.paper import FeeSchedule, PaperVenue
from kernel.risk import RiskConfig, RiskEngine
from kernel.service.config import ComponentSpec
from kernel.trading import MarketData, StrategyRunner, TradingContext, VenueMap
from kernel.trading.clock import MarketClock
from tradekernel_sdk import BookView, OrderIntent, Strategy
from tradekernel_sdk.orders import OrderSide, OrderType, TimeInForce
from tradekernel_sdk.types import BookDelta, BookSnapshot

NAME = "remote"
_GOAL_P50_NS = 400_000
_EVENTS = 2_000
_QUICK_EVENTS = 300
_ROOT = Path(__file__).resolve().parents[1]


class Pinger(Strategy):
    """Answer every book update with an IOC buy ten dollars under the best bid."""

    class Config(Strategy.Config, frozen=True, kw_only=True):
        venue: str = "binance"
        symbol: str = "BTCUSDT"

    config: Config

    def __init__(self, context: Any, config: Strategy.Config) -> None:
        super().__init__(context, config)
        self.stamps: list[int] = []

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        best = book.best_bid()
        if best is None:
            return
        self.stamps.append(time.perf_counter_ns())
        self.context.submit(
            OrderIntent(
                symbol=self.config.symbol,
                venue=self.config.venue,
                side=OrderSide.BUY,
                order_type=OrderType.LIMIT,
                quantity=100_000,
                price=best[0] - 1_000_000_000,
                time_in_force=TimeInForce.IOC,
            )
        )


class _Stack:
    """Feed, books, paper venue, risk, journal and order manager, wired as the service does."""

    def __init__(self, journal: Path) -> None:
        self.bus = Bus()
        self.clock = MarketClock(self.bus)
        self.feed = BinanceFeed(self.bus, "spot")
        self.paper = PaperVenue(
            self.bus,
            instruments=KNOWN_INSTRUMENTS["binance"],
            fees=FeeSchedule(maker_bps=1, taker_bps=5),
            latency_ns=1_000_000,
            books=self.feed.book,
        )
        self.market = MarketData(
            books={"binance": self.feed.book},
            states={"binance": self.feed.book_state},
            instruments={"binance": self.feed.instrument},
        )
        self.venues = VenueMap({"binance": "paper"})
        context = TradingContext(market=self.market, venues=self.venues)
        self.journal = Journal.open(journal, fsync="batch")
        self.orders = OrderManager(
            self.bus,
            journal=self.journal,
            risk=RiskEngine(RiskConfig(), context, clock=self.clock, bus=self.bus),
            instruments=context.instrument,
            clock=self.clock,
        )
        context.attach(self.orders)
        self.books = 0
        self.bus.subscribe(topics.book("binance", "BTCUSDT"), self._count)

    def _count(self, _: object) -> None:
        self.books += 1

    def close(self) -> None:
        self.orders.close()
        self.paper.close()
        self.journal.close()


class _TimedLink(ComponentLink):
    """A link that stamps the moment each intent is read back."""

    arrived: asyncio.Event
    stamp = 0

    def _intent(self, request_id: str, message: Any) -> None:
        self.stamp = time.perf_counter_ns()
        self.arrived.set()
        super()._intent(request_id, message)


def _in_process(frames: list[RawFrame], events: int, folder: Path) -> list[int]:
    stack = _Stack(folder / "inside.tkj")
    runner = StrategyRunner(
        stack.bus, orders=stack.orders, market=stack.market, venues=stack.venues, clock=stack.clock
    )
    slot = runner.add("pinger", Pinger, Pinger.Config())
    strategy = slot.strategy
    assert isinstance(strategy, Pinger)
    runner.start()
    latencies: list[int] = []
    for frame in frames:
        before = len(strategy.stamps)
        started = time.perf_counter_ns()
        stack.feed.on_frame(frame)
        if len(strategy.stamps) > before:
            latencies.append(strategy.stamps[before] - started)
            if len(latencies) >= events:
                break
    runner.stop()
    stack.close()
    return latencies


async def _remote(frames: list[RawFrame], events: int, folder: Path) -> list[int]:
    stack = _Stack(folder / "remote.tkj")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    spec = ComponentSpec(name="pinger", command=tuple(sdk_command("bench.remote:Pinger")))
    link = _TimedLink(
        spec,
        bus=stack.bus,
        orders=stack.orders,
        market=stack.market,
        venues=stack.venues,
        clock=stack.clock,
        instruments=KNOWN_INSTRUMENTS["binance"].values,
    )
    link.arrived = asyncio.Event()
    link.start()
    latencies: list[int] = []
    try:
        await link.wait_up(60)
        await link.settle()
        for frame in frames:
            books = stack.books
            link.arrived.clear()
            started = time.perf_counter_ns()
            stack.feed.on_frame(frame)
            if stack.books > books and stack.market.book("binance", "BTCUSDT") is not None:
                async with asyncio.timeout(10):
                    await link.arrived.wait()
                latencies.append(link.stamp - started)
                if len(latencies) >= events:
                    break
            await link.settle()
    finally:
        await link.stop()
        stack.close()
    return latencies[10:]  # the first few warm up both processes


def run(ctx: Context) -> dict[str, Any]:
    """Time the round trip to a component in another process against the same strategy inside."""
    events = _QUICK_EVENTS if ctx.quick else _EVENTS
    paths = list(ctx.data.spot["BTCUSDT"])
    frames = load_frames(paths[:1], 40_000 if not ctx.quick else 15_000)
    print(f"\n[{NAME}] book event -> strategy -> intent back in the kernel; {events} events")
    logging.getLogger("kernel").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tk-bench-remote-") as folder:
        inside = _in_process(frames, events, Path(folder))
        remote = uvloop.run(_remote(frames, events, Path(folder)))
    figures = {}
    for label, values in (("remote", remote), ("in-process", inside)):
        figures[label] = {
            "count": len(values),
            "p50": percentile(values, 50),
            "p99": percentile(values, 99),
            "max": max(values),
        }
    table(
        f"{NAME}: book event -> intent back in the kernel",
        ["path", "events", "p50", "p99", "max"],
        [
            [label, fmt_int(int(f["count"])), fmt_ns(f["p50"]), fmt_ns(f["p99"]), fmt_ns(f["max"])]
            for label, f in figures.items()
        ],
    )
    ratio = figures["remote"]["p50"] / max(figures["in-process"]["p50"], 1)
    met = figures["remote"]["p50"] <= _GOAL_P50_NS
    note(f"remote p50 is {ratio:.1f}x the in-process p50 (the same strategy, the same frames)")
    note(
        f"remote p50 {fmt_ns(figures['remote']['p50'])} "
        f"(goal <= 400 us: {'met' if met else 'MISSED'})"
    )
    return {
        "latency_ns": figures,
        "p50_ratio_remote_to_in_process": round(ratio, 1),
        "goals": {"p50_ns": _GOAL_P50_NS, "p50_met": met},
    }
