"""What the servicers read and drive: the kernel's parts, looked up when a call arrives.

The trading component builds its order manager and risk engine only when it
starts, so :class:`ApiParts` holds functions that return them (or None while
there are none): a call that needs one before then fails with UNAVAILABLE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from kernel.api.errors import ApiError
from kernel.bus import Bus
from kernel.orders import OrderManager
from kernel.risk import RiskEngine
from kernel.trading import MarketData, VenueMap
from kernel.trading.changes import RuntimeChanges
from tradekernel_sdk.types import Instrument

if TYPE_CHECKING:  # the service builds the API, so the API imports its config lazily
    from kernel.plugins import PluginHost
    from kernel.service.config import KernelConfig
    from kernel.serving import ModelRegistry

__all__ = ["ApiParts"]


def _none() -> None:
    return None


@dataclass
class ApiParts:
    """The kernel's parts the API serves.

    ``instruments`` returns every instrument of the market venues, the books
    the API knows; ``components`` the names of the kernel's components in
    start order; ``plugins`` the plug-in host (None when the kernel loaded no
    plug-ins); ``changes`` what applies and journals operator changes (risk
    limits, plug-in switches); ``model_dir`` the model repository; ``serving``
    the model registry the kernel serves from (None when it serves no models).
    """

    bus: Bus
    market: MarketData
    venues: VenueMap
    instruments: Callable[[], Sequence[Instrument]]
    orders: Callable[[], OrderManager | None] = _none
    risk: Callable[[], RiskEngine | None] = _none
    config: KernelConfig | None = None
    config_source: str = "embedded default"
    components: Callable[[], Sequence[str]] = tuple
    component_health: Callable[[], Sequence[tuple[str, str, str]]] | None = None
    """``(name, state, detail)`` of every component, where the service knows more
    than its name; state is a ``ComponentState`` name without its prefix
    (``RUNNING``, ``STARTING``, ``FAILED``, ...). None: every component is running."""
    plugins: Callable[[], PluginHost | None] = _none
    changes: Callable[[], RuntimeChanges | None] = _none
    model_dir: Path | None = None
    serving: Callable[[], ModelRegistry | None] = _none
    started_wall_ns: int = field(default_factory=time.time_ns)
    started_monotonic_ns: int = field(default_factory=time.monotonic_ns)

    def order_manager(self) -> OrderManager:
        """Return the order manager; UNAVAILABLE while trading is not started."""
        orders = self.orders()
        if orders is None:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "trading is not running")
        return orders

    def risk_engine(self) -> RiskEngine:
        """Return the risk engine; UNAVAILABLE while trading is not started."""
        risk = self.risk()
        if risk is None:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "trading is not running")
        return risk

    def runtime_changes(self) -> RuntimeChanges:
        """Return what applies operator changes; UNAVAILABLE while trading is not started."""
        changes = self.changes()
        if changes is None:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "trading is not running")
        return changes

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Return the instrument of a market or trading venue, or None."""
        market_venue = self.venues.market_venue(venue)
        found = self.market.instrument(market_venue, symbol)
        if found is not None:
            return found
        return next(
            (
                item
                for item in self.instruments()
                if item.venue == market_venue and item.symbol == symbol
            ),
            None,
        )
