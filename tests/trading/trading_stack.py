"""A real trading stack on the bundled data: feed, paper venue, journal, risk, orders, runner."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS, BinanceFeed
from kernel.bus import Bus
from kernel.journal import Journal
from kernel.orders import OrderManager
from kernel.paper import FeeSchedule, PaperVenue
from kernel.risk import RiskConfig, RiskEngine
from kernel.trading import MarketData, RunnerPolicy, StrategyRunner, TradingContext, VenueMap
from kernel.trading.clock import MarketClock
from tradekernel_sdk.strategy import Strategy


class TradingStack:
    """Everything between a raw frame and the paper venue, wired as the service wires it."""

    def __init__(
        self,
        journal_path: Path,
        *,
        risk: RiskConfig | None = None,
        policy: RunnerPolicy | None = None,
    ) -> None:
        self.bus = Bus()
        self.clock = MarketClock(self.bus)
        self.feed = BinanceFeed(self.bus, "spot")
        self.paper = PaperVenue(
            self.bus,
            instruments=KNOWN_INSTRUMENTS["binance"],
            fees=FeeSchedule(maker_bps=1, taker_bps=5),
            latency_ns=2_000_000,
            books=self.feed.book,
        )
        self.market = MarketData(
            books={"binance": self.feed.book},
            states={"binance": self.feed.book_state},
            instruments={"binance": self.feed.instrument},
        )
        self.venues = VenueMap({"binance": "paper"})
        self.context = TradingContext(market=self.market, venues=self.venues)
        self.risk = RiskEngine(risk or RiskConfig(), self.context, clock=self.clock, bus=self.bus)
        self.journal = Journal.open(journal_path, fsync="batch")
        self.orders = OrderManager(
            self.bus,
            journal=self.journal,
            risk=self.risk,
            instruments=self.context.instrument,
            clock=self.clock,
        )
        self.context.attach(self.orders)
        self.recovered = self.orders.recover(
            (record.kind, record.payload)
            for record in self.journal.records_since(0)
            if record.kind in OrderManager.RECORD_KINDS
        )
        self.runner = StrategyRunner(
            self.bus,
            orders=self.orders,
            market=self.market,
            venues=self.venues,
            clock=self.clock,
            policy=policy,
        )

    def add(self, name: str, strategy: type[Strategy], config: Strategy.Config) -> None:
        self.runner.add(name, strategy, config)

    def run(self, frames: Iterable[RawFrame]) -> None:
        self.runner.start()
        for frame in frames:
            self.feed.on_frame(frame)
        self.runner.stop()

    def close(self) -> None:
        self.orders.close()
        self.paper.close()
        self.journal.close()
