"""Build the kernel's components from a configuration, in dependency order.

The builder only wires objects together; :mod:`kernel.service.lifecycle`
starts and stops them. Collaborators are passed by keyword (``bus=``,
``books=``) so every dependency is visible at the call site.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel import __version__
from kernel.adapters.base import Feed
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.adapters.registry import create_feed
from kernel.api import ApiParts, ApiServer
from kernel.bus import Bus
from kernel.live.component import LiveMarketDataComponent, LiveRunner, create_runner
from kernel.live.credentials import CredentialsError, VenueCredentials
from kernel.live.order_entry import LiveOrderEntryComponent, OrderEntrySettings, trading_credentials
from kernel.metrics import StageLatency, TickToOrder
from kernel.plugins import PluginHost
from kernel.service.components import (
    MetricsComponent,
    PaperComponent,
    ReplayComponent,
    StateDirectory,
    StrategiesComponent,
    TradingComponent,
)
from kernel.service.config import API_TOKENS_ENV, ConfigError, KernelConfig
from kernel.service.lifecycle import Component, Lifecycle, ShutdownRequest
from kernel.serving.registry import Components
from kernel.serving.service import ServingComponent
from kernel.trading import MarketData, VenueMap
from kernel.trading.clock import MarketClock
from tradekernel_sdk.plugin import RegistrationKind
from tradekernel_sdk.strategy import Strategy, StrategyConfigError, load_strategy_config
from tradekernel_sdk.types import Instrument

__all__ = ["KernelApp", "build"]


@dataclass
class KernelApp:
    """The built kernel: its components in start order and handles for the summary."""

    config: KernelConfig
    bus: Bus
    lifecycle: Lifecycle
    shutdown: ShutdownRequest
    feeds: dict[str, Feed] = field(default_factory=dict)
    replays: list[ReplayComponent] = field(default_factory=list)
    metrics: MetricsComponent | None = None
    paper: PaperComponent | None = None
    trading: TradingComponent | None = None
    components: Any = None
    """The out-of-process components (:class:`kernel.components.ComponentsService`), if any."""
    plugins: PluginHost | None = None
    order_entries: list[LiveOrderEntryComponent] = field(default_factory=list)
    """Live venues orders are routed to (``[[live]]`` with ``trade = true``)."""
    started_at: float = field(default_factory=time.perf_counter)


def _strategies(
    config: KernelConfig, host: PluginHost
) -> list[tuple[str, type[Strategy], Strategy.Config]]:
    """Resolve each configured strategy to its registered class and validated config."""
    available = host.strategies()
    resolved = []
    for spec in config.strategies:
        strategy_class = available.get(spec.strategy)
        if strategy_class is None:
            installed = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                f"strategies.{spec.name}.strategy: no strategy {spec.strategy!r} is registered "
                f"(installed: {installed})"
            )
        try:
            strategy_config = load_strategy_config(
                strategy_class, spec.settings, f"strategies.{spec.name}"
            )
        except StrategyConfigError as error:
            raise ConfigError(str(error)) from None
        resolved.append((spec.name, strategy_class, strategy_config))
    return resolved


_REMOTE_STATES = {"up": "RUNNING", "connecting": "STARTING", "down": "FAILED", "stopped": "STOPPED"}


def _component_health(components: list[Component], remote: Any) -> list[tuple[str, str, str]]:
    """Return ``(name, state, detail)`` of the service's parts and out-of-process components."""
    rows = []
    for component in components:
        state, detail = "RUNNING", ""
        if isinstance(component, LiveMarketDataComponent):
            session = getattr(component.runner, "session", None)
            stats = component.session_stats
            if session is not None and stats is not None and not session.connected.is_set():
                state = "STARTING"
                detail = f"not connected ({stats.connects} connects, {stats.disconnects} drops)"
        elif isinstance(component, LiveOrderEntryComponent | ServingComponent):
            state, detail = component.health()
        rows.append((component.name, state, detail))
    if remote is not None:
        for name, report in remote.report().items():
            rows.append(
                (f"component:{name}", _REMOTE_STATES[report["state"]], report["down_reason"] or "")
            )
    return rows


def _trading_keys(
    config: KernelConfig, environ: Mapping[str, str] | None
) -> dict[str, VenueCredentials]:
    """Load every live trading venue's keys, or fail naming what to set, before anything runs."""
    keys = {}
    for index, live_config in enumerate(config.live):
        if not live_config.trade:
            continue
        try:
            keys[live_config.venue] = trading_credentials(
                live_config.venue, secrets_file=config.secrets_file, environ=environ
            )
        except CredentialsError as error:
            raise ConfigError(f"live[{index}].trade: {error}") from None
    return keys


def build(
    config: KernelConfig, *, progress: bool = True, environ: Mapping[str, str] | None = None
) -> KernelApp:
    """Wire bus → state → metrics → feeds → paper venue → trading → order entry → components
    → replay drivers.

    Venue keys come from ``environ`` (the process environment by default) and
    the configured secrets file.
    """
    # kernel.components reads this package's config module: import it here, not above.
    from kernel.components import ComponentsService, discover, resolve_specs  # noqa: PLC0415

    trading_keys = _trading_keys(config, environ)
    bus = Bus()
    shutdown = ShutdownRequest()
    state = StateDirectory(config.state_dir)
    components: list[Component] = [state]
    clock = MarketClock(bus)
    probe = TickToOrder() if config.strategies or config.components else None

    metrics: MetricsComponent | None = None
    if config.metrics.enabled:
        metrics = MetricsComponent(config.metrics)
        metrics.server.collector.add_gauge(
            "bus_handler_errors", "Bus handlers that raised", lambda: float(bus.handler_errors)
        )
        components.append(metrics)

    feeds: dict[str, Feed] = {}
    latencies: dict[str, StageLatency] = {}
    sources = [(c.venue, c.verify) for c in config.replay]
    sources += [(c.venue, True) for c in config.live if not c.ccxt_exchange]
    for venue, verify in sources:
        if venue in feeds:
            continue
        latency = StageLatency()
        feed = create_feed(venue, bus, verify=verify, latency=latency, probe=probe)
        feeds[venue] = feed
        latencies[venue] = latency
        if metrics is not None:
            metrics.server.collector.add_feed(venue, feed.stats, latency)
    for live_config in config.live:
        runner: LiveRunner
        if live_config.ccxt_exchange:
            # ccxt reads its own sockets: the adapter is the feed and the connection at once.
            # Imported here: ccxt takes a while to import, and only ccxt venues need it.
            from kernel.live.ccxt_adapter import CcxtMarketData, create_exchange  # noqa: PLC0415

            adapter = CcxtMarketData(
                create_exchange(live_config.ccxt_exchange, live_config.ccxt_options),
                bus,
                live_config.symbols,
                venue=live_config.venue,
            )
            feeds[live_config.venue] = adapter
            runner = adapter
        else:
            runner = create_runner(
                live_config.venue,
                feeds[live_config.venue],
                list(live_config.symbols),
                {"ws_url": live_config.ws_url, "rest_url": live_config.rest_url},
            )
        # Started with the other components, before trading: books fill while strategies load.
        components.append(LiveMarketDataComponent(live_config.venue, runner))

    instruments: dict[str, Instrument] = dict(KNOWN_INSTRUMENTS.get(config.paper.market_venue, {}))
    market_feed = feeds.get(config.paper.market_venue)
    paper: PaperComponent | None = None
    if config.paper.enabled and market_feed is not None:
        paper = PaperComponent(
            bus,
            config.paper,
            instruments=instruments,
            books=market_feed.book,
            state_dir=lambda: state.path,
        )
        components.append(paper)

    market = MarketData(
        books={venue: feed.book for venue, feed in feeds.items()},
        states={venue: feed.book_state for venue, feed in feeds.items()},
        instruments={venue: feed.instrument for venue, feed in feeds.items()},
    )
    # A venue that trades live routes to itself; paper keeps simulating the others.
    routes = (
        {} if config.paper.market_venue in trading_keys else {config.paper.market_venue: "paper"}
    )
    routes.update({venue: venue for venue in trading_keys})
    venues = VenueMap(routes)
    trading: TradingComponent | None = None
    host: PluginHost | None = None
    component_specs = resolve_specs(config.components, config.plugins, discover())
    if config.strategies or component_specs:
        if paper is None and not trading_keys:
            raise ConfigError(
                "strategies: trading needs the paper venue and its market's data,"
                " or a [[live]] venue with trade = true"
            )
        host = PluginHost(allow=config.plugins.allow, block=config.plugins.block)
        host.load()
        loaded = host
        trading = TradingComponent(
            bus,
            config=config,
            strategies=_strategies(config, host),
            market=market,
            venues=venues,
            state_dir=lambda: state.path,
            risk_checks=host.risk_checks(),
            venue_reports=lambda: {"paper": paper.report} if paper is not None else {},
            clock=clock,
            probe=probe,
            metrics=metrics.server if metrics is not None else None,
            plugin_owner=lambda kind, name: loaded.owner(RegistrationKind(kind), name),
            hold_strategies=bool(trading_keys),
        )
        components.append(trading)

    serving: ServingComponent | None = None
    if config.serving.enabled:
        named = {spec.name for spec in component_specs}
        for index, model in enumerate(config.serving.models):
            for at, item in enumerate(model.components):
                if item.component not in named:
                    raise ConfigError(
                        f"serving.models[{index}].components[{at}].component: no component "
                        f"{item.component!r} in [[components]] (configured: "
                        f"{', '.join(sorted(named)) or 'none'})"
                    )
        # After trading, whose journal it restores from and writes to; before the data.
        serving = ServingComponent(
            config.serving,
            bus,
            journal=lambda: trading.journal if trading is not None else None,
            books=market.book,
            metrics=metrics.server if metrics is not None else None,
            # The links start after serving: looked up when a version asks.
            components=Components(
                frozenset(spec.name for spec in component_specs),
                lambda: remote.links if remote is not None else {},
            ),
        )
        components.append(serving)

    order_entries: list[LiveOrderEntryComponent] = []
    if trading_keys and trading is None:
        index = next(i for i, live_config in enumerate(config.live) if live_config.trade)
        raise ConfigError(
            f"live[{index}].trade: nothing would trade on the live venue;"
            " configure [strategies] or [[components]]"
        )
    traded = trading
    for live_config in config.live:
        if traded is None or not live_config.trade:
            continue
        # After trading (the journal is replayed first), and so stopped before it.
        order_entry = LiveOrderEntryComponent(
            bus,
            OrderEntrySettings(
                venue=live_config.venue,
                credentials=trading_keys[live_config.venue],
                instruments=feeds[live_config.venue].instrument,
                orders=None,
                rest_url=live_config.rest_url,
                ws_url=live_config.ws_url,
            ),
            orders=lambda: traded.orders if traded is not None else None,
        )
        order_entries.append(order_entry)
        components.append(order_entry)
    if traded is not None and order_entries:
        # Strategies start once every live venue has reconciled, and stop before any stops.
        components.append(StrategiesComponent(traded))

    remote: ComponentsService | None = None
    if trading is not None and component_specs:

        def component_instruments() -> list[Instrument]:
            known = {(item.venue, item.symbol): item for item in instruments.values()}
            for feed in feeds.values():
                for symbol in feed.symbols:
                    if (instrument := feed.instrument(symbol)) is not None:
                        known[instrument.venue, instrument.symbol] = instrument
            return list(known.values())

        remote = ComponentsService(
            component_specs,
            bus=bus,
            orders=lambda: trading.orders if trading is not None else None,
            market=market,
            venues=venues,
            clock=clock,
            instruments=component_instruments,
            kernel_version=__version__,
            metrics=metrics.server if metrics is not None else None,
        )
        components.append(remote)

    if config.api.enabled:
        if not config.api.tokens:
            raise ConfigError(f"api.tokens: the API needs at least one token ({API_TOKENS_ENV})")
        parts = ApiParts(
            bus=bus,
            market=market,
            venues=venues,
            instruments=lambda: [
                instrument
                for feed in feeds.values()
                for symbol in feed.symbols
                if (instrument := feed.instrument(symbol)) is not None
            ],
            orders=lambda: trading.orders if trading is not None else None,
            risk=lambda: trading.risk if trading is not None else None,
            config=config,
            components=lambda: [component.name for component in components],
            component_health=lambda: _component_health(components, remote),
            plugins=lambda: host,
            changes=lambda: trading.changes if trading is not None else None,
            model_dir=config.api.model_dir,
            serving=lambda: serving.registry if serving is not None else None,
        )
        api = ApiServer(
            parts,
            host=config.api.host,
            port=config.api.port,
            tokens=config.api.tokens,
            tls=config.api.tls,
        )
        if metrics is not None:
            metrics.server.collector.add_source(api.metrics.families)
        components.append(api)

    replays: list[ReplayComponent] = []

    def replay_done(component: ReplayComponent) -> None:
        if config.exit_when_replay_done and all(item.done or item is component for item in replays):
            shutdown.request("replay finished")

    for index, replay_config in enumerate(config.replay):
        replay_component = ReplayComponent(
            replay_config,
            feeds[replay_config.venue],
            latency=latencies[replay_config.venue],
            shutdown=shutdown,
            on_done=replay_done,
            progress=progress,
        )
        if len(config.replay) > 1:
            replay_component.name = f"{replay_component.name}#{index}"
        replays.append(replay_component)
        components.append(replay_component)
    lifecycle = Lifecycle(components, stop_timeout_s=config.shutdown_timeout_s, shutdown=shutdown)
    return KernelApp(
        config=config,
        bus=bus,
        lifecycle=lifecycle,
        shutdown=shutdown,
        feeds=feeds,
        replays=replays,
        metrics=metrics,
        paper=paper,
        trading=trading,
        components=remote,
        plugins=host,
        order_entries=order_entries,
    )
