"""The kernel's components, each a start/stop pair the lifecycle runs in order."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from kernel.adapters.base import Feed
from kernel.book import L2Book
from kernel.bus import Bus, topics
from kernel.journal import Journal
from kernel.metrics import MetricsServer, StageLatency, TickToOrder
from kernel.orders import OrderManager
from kernel.orders.projection import SqliteProjection, journaled_fills
from kernel.paper import FeeSchedule, PaperVenue, VenueOrderRecord
from kernel.recording import merge_frames, open_reader
from kernel.replay import Progress, ReplayReport, replay
from kernel.risk import RiskEngine, TradingState, TradingStateChanged
from kernel.service.config import (
    KernelConfig,
    MetricsConfig,
    PaperConfig,
    ReplayConfig,
)
from kernel.service.lifecycle import ShutdownRequest
from kernel.trading import MarketData, StrategyRunner, TradingContext, VenueMap
from kernel.trading.changes import RuntimeChanges
from tradekernel_sdk.orders import (
    OrderFilled,
)
from tradekernel_sdk.strategy import Strategy
from tradekernel_sdk.types import Instrument

__all__ = [
    "MetricsComponent",
    "PaperComponent",
    "ReplayComponent",
    "StateDirectory",
    "StrategiesComponent",
    "TradingComponent",
]

log = logging.getLogger(__name__)


class MetricsComponent:
    """The Prometheus endpoint; ready once the port is bound."""

    name = "metrics"

    def __init__(self, config: MetricsConfig) -> None:
        self.server = MetricsServer(config.host, config.port)

    async def start(self) -> None:
        self.server.start()

    async def stop(self) -> None:
        self.server.stop()


class ReplayComponent:
    """Drive one venue feed from recorded files; ready once every file is open."""

    def __init__(
        self,
        config: ReplayConfig,
        feed: Feed,
        *,
        latency: StageLatency,
        shutdown: ShutdownRequest,
        on_done: Callable[[ReplayComponent], None],
        progress: bool = True,
    ) -> None:
        self.name = f"replay:{config.venue}"
        self.config = config
        self.feed = feed
        self.latency = latency
        self.shutdown = shutdown
        self.on_done = on_done
        self.progress = progress
        self.report: ReplayReport | None = None
        self.reader_malformed = 0
        self._readers: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._readers = [open_reader(path) for path in self.config.files]
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        try:
            progress = Progress(self.name) if self.progress else None
            self.report = await replay(
                merge_frames(*self._readers),
                self.feed,
                speed=self.config.speed,
                progress=progress,
                stop=self._stop,
                latency=self.latency,
            )
            self.report.reader_malformed = sum(
                getattr(reader, "malformed_lines", 0) for reader in self._readers
            )
        except Exception as error:
            log.exception("%s failed", self.name)
            self.shutdown.request(f"{self.name} failed: {error}")
            return
        self.on_done(self)

    @property
    def done(self) -> bool:
        """Return whether the replay has finished (or failed)."""
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


class PaperComponent:
    """The paper venue, trading against the books of one market feed.

    With a state folder it keeps its own log of what it did (``paper-venue.tkj``),
    like an exchange's own records: after a restart it reinstates its working
    orders from it, and the order manager reconciles against :attr:`report`.
    """

    name = "paper"

    def __init__(
        self,
        bus: Bus,
        config: PaperConfig,
        *,
        instruments: dict[str, Instrument],
        books: Callable[[str], L2Book | None],
        state_dir: Callable[[], Path] | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.instruments = instruments
        self.books = books
        self.state_dir = state_dir
        self.venue: PaperVenue | None = None
        self.store: Journal | None = None
        self.report: dict[str, VenueOrderRecord] = {}

    async def start(self) -> None:
        if self.state_dir is not None:
            self.store = Journal.open(self.state_dir() / "paper-venue.tkj", fsync="never")
        self.venue = PaperVenue(
            self.bus,
            instruments=self.instruments,
            market_venue=self.config.market_venue,
            fees=FeeSchedule(
                maker_bps=Decimal(str(self.config.maker_fee_bps)),
                taker_bps=Decimal(str(self.config.taker_fee_bps)),
            ),
            latency_ns=round(self.config.latency_ms * 1_000_000),
            books=self.books,
            store=self.store,
        )
        if self.store is not None:
            self.report = self.venue.recover(
                (record.kind, record.payload) for record in self.store.records_since(0)
            )

    async def stop(self) -> None:
        if self.venue is not None:
            self.venue.close()
        if self.store is not None:
            self.store.sync()
            self.store.close()


class TradingComponent:
    """Journal, risk engine, order manager and strategies, started in that order.

    On start the journal is replayed into the order manager, so orders and
    positions are those the kernel had acknowledged before a restart; then the
    strategies start and receive data.
    """

    name = "trading"

    def __init__(
        self,
        bus: Bus,
        *,
        config: KernelConfig,
        strategies: Sequence[tuple[str, type[Strategy], Strategy.Config]],
        market: MarketData,
        venues: VenueMap,
        state_dir: Callable[[], Path],
        risk_checks: Mapping[str, Any],
        venue_reports: Callable[[], Mapping[str, Mapping[str, VenueOrderRecord]]] = dict,
        clock: Callable[[], int],
        probe: TickToOrder | None = None,
        metrics: MetricsServer | None = None,
        plugin_owner: Callable[[str, str], str | None] | None = None,
        hold_strategies: bool = False,
    ) -> None:
        self.bus = bus
        self.hold_strategies = hold_strategies
        """Leave starting the strategies to a :class:`StrategiesComponent` (live venues first)."""
        self._strategies_running = False
        self.plugin_owner = plugin_owner
        """``(kind, registered name)`` → the plug-in that registered it, for operator switches."""
        self.changes: RuntimeChanges | None = None
        self.probe = probe
        self.metrics = metrics
        self.config = config
        self.strategy_specs = strategies
        self.market = market
        self.venues = venues
        self.state_dir = state_dir
        self.risk_checks = risk_checks
        self.venue_reports = venue_reports
        self.reconciled: dict[str, dict[str, int]] = {}
        self.clock = clock
        self.journal: Journal | None = None
        self.orders: OrderManager | None = None
        self.risk: RiskEngine | None = None
        self.runner: StrategyRunner | None = None
        self.context: TradingContext | None = None
        self.recovered = 0
        self.projection: SqliteProjection | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._subscribed: list[tuple[str, Callable[[Any], None]]] = []

    async def start(self) -> None:
        journal_config = self.config.journal
        self.journal = Journal.open(
            self.state_dir() / "journal.tkj",
            fsync=journal_config.fsync,  # type: ignore[arg-type]
            batch_records=journal_config.batch_records,
            batch_interval_ms=journal_config.batch_interval_ms,
            background_sync=journal_config.background_sync,
        )
        self.context = TradingContext(market=self.market, venues=self.venues)
        self.risk = RiskEngine(
            self.config.risk, self.context, clock=self.clock, on_halt=self._on_halt, bus=self.bus
        )
        if self.metrics is not None:
            self._export_metrics(self.metrics)
        for name, check in self.risk_checks.items():
            self.risk.register_check(name, check)
        self.orders = OrderManager(
            self.bus,
            journal=self.journal,
            risk=self.risk,
            instruments=self.context.instrument,
            clock=self.clock,
            venues=sorted(set(self.venues.routes.values())),
            probe=self.probe,
        )
        self.context.attach(self.orders)
        records = [(record.kind, record.payload) for record in self.journal.records_since(0)]
        self.recovered = self.orders.recover(
            (kind, payload) for kind, payload in records if kind in OrderManager.RECORD_KINDS
        )
        if self.recovered:
            log.info("recovered %d journal records: %s", self.recovered, dict(self.orders.counts()))
        for venue, report in self.venue_reports().items():
            self.reconciled[venue] = self.orders.reconcile(venue, report)
        self.projection = SqliteProjection(self.state_dir() / "orders.sqlite", self.orders)
        self.projection.rebuild(journaled_fills(records))
        self.projection.follow(self.bus)
        self._subscribed = [
            ("oms.event.>", self._on_order_event),
            (topics.RISK_EVENTS, self._on_risk_event),
        ]
        for pattern, handler in self._subscribed:
            self.bus.subscribe(pattern, handler)
        self._restore_trading_state(records)
        self._flusher = asyncio.create_task(self._flush_projection(), name="projection-flush")
        self.runner = StrategyRunner(
            self.bus,
            orders=self.orders,
            market=self.market,
            venues=self.venues,
            clock=self.clock,
            policy=self.config.runner,
            probe=self.probe,
        )
        for name, strategy_class, strategy_config in self.strategy_specs:
            self.runner.add(name, strategy_class, strategy_config)
        self.changes = self._runtime_changes(self.journal, self.risk, self.runner)
        self.changes.restore(records)
        if not self.hold_strategies:
            self.start_strategies()

    def start_strategies(self) -> None:
        """Start delivering data to the strategies (once)."""
        if self.runner is not None and not self._strategies_running:
            self._strategies_running = True
            self.runner.start()

    def stop_strategies(self) -> None:
        """Stop delivering data to the strategies (once)."""
        if self.runner is not None and self._strategies_running:
            self._strategies_running = False
            self.runner.stop()

    def _runtime_changes(
        self, journal: Journal, risk: RiskEngine, runner: StrategyRunner
    ) -> RuntimeChanges:
        owner = self.plugin_owner or (lambda kind, name: None)
        strategy_plugins = {}
        for spec in self.config.strategies:
            plugin = owner("strategies", spec.strategy)
            if plugin is not None:
                strategy_plugins[spec.name] = plugin
        risk_checks = {}
        for name, check in self.risk_checks.items():
            plugin = owner("risk_checks", name)
            if plugin is not None:
                risk_checks[name] = (plugin, check)
        return RuntimeChanges(
            journal=journal,
            risk=risk,
            runner=runner,
            strategy_plugins=strategy_plugins,
            risk_checks=risk_checks,
            clock=self.clock,
        )

    def _export_metrics(self, metrics: MetricsServer) -> None:
        collector = metrics.collector
        collector.add_counters(
            "risk_denials",
            "Orders the risk engine denied, by reason code",
            "reason",
            lambda: {
                reason.value: float(count)
                for reason, count in (self.risk.denials.items() if self.risk else ())
            },
        )
        collector.add_counters(
            "strategy_errors",
            "Exceptions raised by strategy callbacks",
            "strategy",
            lambda: {
                name: float(slot.errors)
                for name, slot in (self.runner.slots.items() if self.runner else ())
            },
        )
        collector.add_counters(
            "strategy_overruns",
            "Strategy callbacks that ran past their time budget",
            "strategy",
            lambda: {
                name: float(slot.overruns)
                for name, slot in (self.runner.slots.items() if self.runner else ())
            },
        )
        collector.add_gauge(
            "open_orders",
            "Orders working at venues",
            lambda: float(len(self.orders.open_orders()) if self.orders else 0),
        )
        collector.add_gauge(
            "trading_halted",
            "1 while the risk engine is HALTED",
            lambda: float(self.risk is not None and self.risk.state.value == "halted"),
        )

    async def _flush_projection(self) -> None:
        while self.projection is not None:
            await asyncio.sleep(1.0)
            self.projection.flush()

    def _on_risk_event(self, event: Any) -> None:
        # A halt must survive a restart: journal every trading-state change.
        if isinstance(event, TradingStateChanged) and self.journal is not None:
            self.journal.append("risk_state", [event.state.value, event.reason], event.ts)
            self.journal.flush()

    def _restore_trading_state(self, records: Sequence[tuple[str, Any]]) -> None:
        """Put the risk engine back in the trading state the journal last recorded."""
        last = next((payload for kind, payload in reversed(records) if kind == "risk_state"), None)
        if last is None or self.risk is None:
            return
        state, reason = TradingState(last[0]), f"{last[1]} (restored after a restart)"
        if state is TradingState.HALTED:
            self.risk.halt(reason)
        elif state is TradingState.REDUCING:
            self.risk.reduce(reason)

    def _on_order_event(self, event: Any) -> None:
        if isinstance(event, OrderFilled) and self.risk is not None:
            self.risk.evaluate()

    def _on_halt(self, reason: str) -> None:
        log.error("trading halted: %s; cancelling every working order", reason)
        if self.orders is not None:
            self.orders.cancel_all()

    async def stop(self) -> None:
        self.stop_strategies()
        for pattern, handler in self._subscribed:
            self.bus.unsubscribe(pattern, handler)
        self._subscribed.clear()
        if self._flusher is not None:
            self._flusher.cancel()
        if self.projection is not None:
            self.projection.close(self.bus)
            self.projection = None
        if self.orders is not None:
            self.orders.close()
        if self.journal is not None:
            self.journal.sync()
            self.journal.close()


class StrategiesComponent:
    """The trading component's strategies, started once the venues they trade on are ready."""

    name = "strategies"

    def __init__(self, trading: TradingComponent) -> None:
        self.trading = trading

    async def start(self) -> None:
        self.trading.start_strategies()

    async def stop(self) -> None:
        self.trading.stop_strategies()


class StateDirectory:
    """The folder for the journal and venue state; a temporary one when none is configured."""

    name = "state"

    def __init__(self, path: Path | None) -> None:
        self.configured = path
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """Return the folder (only after start)."""
        if self._path is None:
            raise RuntimeError("the state directory is not ready yet")
        return self._path

    async def start(self) -> None:
        if self.configured is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="tradekernel-")
            self._path = Path(self._temporary.name)
        else:
            self.configured.mkdir(parents=True, exist_ok=True)
            self._path = self.configured
        log.info("state in %s%s", self._path, " (temporary)" if self._temporary else "")

    async def stop(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None
