"""The kernel's components service: every configured and installed component, supervised.

Components come from ``[[components]]`` in the configuration (an endpoint to
dial, a command to spawn, or the name of an entry point) and from installed
distributions that declare one in the ``tradekernel.components`` entry-point
group, run when ``[plugins] allow`` names them. An entry point's object is a
``"package.module:Class"`` string, served with the Python SDK, or a command as
a list of strings.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from prometheus_client.core import GaugeMetricFamily

from kernel.bus import Bus
from kernel.components.link import ComponentLink, ComponentState, sdk_command
from kernel.metrics import MetricsServer
from kernel.orders import OrderManager
from kernel.service.config import ComponentSpec, ConfigError, PluginsConfig
from kernel.trading.context import MarketData, VenueMap
from tradekernel_sdk.types import Instrument

__all__ = ["ENTRY_POINT_GROUP", "ComponentsService", "discover", "resolve_specs"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tradekernel.components"


def discover() -> dict[str, list[str]]:
    """Return the component commands installed distributions declare, by entry-point name."""
    commands: dict[str, list[str]] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            declared: Any = entry_point.load()
        except Exception as error:  # a broken distribution must not stop the kernel
            log.error("component entry point %s cannot load: %s", entry_point.name, error)
            continue
        if isinstance(declared, str):
            commands[entry_point.name] = sdk_command(declared)
        elif (
            isinstance(declared, list | tuple)
            and declared
            and all(isinstance(part, str) for part in declared)
        ):
            commands[entry_point.name] = list(declared)
        else:
            log.error(
                "component entry point %s: expected 'package.module:Class' or a command list, "
                "got %r",
                entry_point.name,
                declared,
            )
    return commands


def resolve_specs(
    specs: Sequence[ComponentSpec], plugins: PluginsConfig, installed: dict[str, list[str]]
) -> list[ComponentSpec]:
    """Return the configured components with entry points resolved, plus allowed installed ones."""
    resolved = []
    for index, spec in enumerate(specs):
        if not spec.entry_point:
            resolved.append(spec)
            continue
        command = installed.get(spec.entry_point)
        if command is None:
            known = ", ".join(sorted(installed)) or "none"
            raise ConfigError(
                f"components[{index}].entry_point: no component {spec.entry_point!r} is "
                f"installed (installed: {known})"
            )
        resolved.append(ComponentSpec(**{**vars(spec), "command": tuple(command)}))
    configured = {spec.entry_point for spec in specs} | {spec.name for spec in specs}
    allowed = set(plugins.allow or ()) - set(plugins.block)
    for name, command in sorted(installed.items()):
        if name in allowed and name not in configured:
            resolved.append(ComponentSpec(name=name, command=tuple(command), entry_point=name))
    return resolved


def _stat(link: ComponentLink, name: str) -> float:
    return float(getattr(link.stats, name))


class ComponentsService:
    """Start every component's link after trading is up; stop them before it stops."""

    name = "components"

    def __init__(
        self,
        specs: Sequence[ComponentSpec],
        *,
        bus: Bus,
        orders: Callable[[], OrderManager | None],
        market: MarketData,
        venues: VenueMap,
        clock: Callable[[], int],
        instruments: Callable[[], Iterable[Instrument]],
        kernel_version: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        metrics: MetricsServer | None = None,
        first_attempt_s: float = 30.0,
    ) -> None:
        self.specs = list(specs)
        self.bus = bus
        self.orders = orders
        self.market = market
        self.venues = venues
        self.clock = clock
        self.instruments = instruments
        self.kernel_version = kernel_version
        self.credentials = credentials
        self.first_attempt_s = first_attempt_s
        self.links: dict[str, ComponentLink] = {}
        if metrics is not None:
            self._export(metrics)

    async def start(self) -> None:
        orders = self.orders()
        if orders is None:
            raise RuntimeError("components need the trading component started first")
        for spec in self.specs:
            link = ComponentLink(
                spec,
                bus=self.bus,
                orders=orders,
                market=self.market,
                venues=self.venues,
                clock=self.clock,
                instruments=self.instruments,
                kernel_version=self.kernel_version,
                credentials=self.credentials,
            )
            self.links[spec.name] = link
            link.start()
        # Ready once every component has had its first chance to connect; one that
        # is not there yet is dialed again in the background.
        for link in self.links.values():
            await link.first_attempt(self.first_attempt_s)

    async def stop(self) -> None:
        for link in self.links.values():
            await link.stop()

    def report(self) -> dict[str, dict[str, Any]]:
        """Return every component's state and counters."""
        return {name: link.report() for name, link in self.links.items()}

    def _export(self, metrics: MetricsServer) -> None:
        collector = metrics.collector

        def per_link(read: Callable[[ComponentLink], float]) -> Callable[[], dict[str, float]]:
            return lambda: {name: float(read(link)) for name, link in self.links.items()}

        collector.add_source(self._families)
        for counter, documentation in (
            ("downs", "Times a component went down"),
            ("dropped", "Market events dropped for a component whose queue was full"),
            ("refused", "Component commands refused"),
            ("callback_errors", "Exceptions components reported from their callbacks"),
            ("intents", "Order intents components sent"),
        ):
            collector.add_counters(
                f"component_{counter}",
                documentation,
                "component",
                per_link(functools.partial(_stat, name=counter)),
            )

    def _families(self) -> list[Any]:
        family = GaugeMetricFamily(
            "tradekernel_component_up", "1 while a component's session is up", labels=["component"]
        )
        for name, link in self.links.items():
            family.add_metric([name], float(link.state is ComponentState.UP))
        return [family]
