"""Build the kernel's components from a configuration, in dependency order.

The builder only wires objects together; :mod:`kernel.service.lifecycle`
starts and stops them. Collaborators are passed by keyword (``bus=``,
``books=``) so every dependency is visible at the call site.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kernel.adapters.base import Feed
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.metrics import StageLatency
from kernel.service.components import (
    DemoOrderFlow,
    MetricsComponent,
    PaperComponent,
    ReplayComponent,
)
from kernel.service.config import KernelConfig
from kernel.service.lifecycle import Component, Lifecycle, ShutdownRequest
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
    demo: DemoOrderFlow | None = None
    started_at: float = field(default_factory=time.perf_counter)


def build(config: KernelConfig, *, progress: bool = True) -> KernelApp:
    """Wire bus → metrics → feeds → paper venue → demo flow → replay drivers."""
    bus = Bus()
    shutdown = ShutdownRequest()
    components: list[Component] = []

    metrics: MetricsComponent | None = None
    if config.metrics.enabled:
        metrics = MetricsComponent(config.metrics)
        metrics.server.collector.add_gauge(
            "bus_handler_errors", "Bus handlers that raised", lambda: float(bus.handler_errors)
        )
        components.append(metrics)

    feeds: dict[str, Feed] = {}
    latencies: dict[str, StageLatency] = {}
    for replay_config in config.replay:
        if replay_config.venue in feeds:
            continue
        latency = StageLatency()
        feed = create_feed(replay_config.venue, bus, verify=replay_config.verify, latency=latency)
        feeds[replay_config.venue] = feed
        latencies[replay_config.venue] = latency
        if metrics is not None:
            metrics.server.collector.add_feed(replay_config.venue, feed.stats, latency)

    instruments: dict[str, Instrument] = dict(KNOWN_INSTRUMENTS.get(config.paper.market_venue, {}))
    market_feed = feeds.get(config.paper.market_venue)
    paper: PaperComponent | None = None
    demo: DemoOrderFlow | None = None
    if config.paper.enabled and market_feed is not None:
        paper = PaperComponent(bus, config.paper, instruments=instruments, books=market_feed.book)
        components.append(paper)
        if config.demo.enabled:
            demo = DemoOrderFlow(
                bus,
                config.demo,
                market_venue=config.paper.market_venue,
                instruments=instruments,
                books=market_feed.book,
            )
            components.append(demo)

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
        demo=demo,
    )
