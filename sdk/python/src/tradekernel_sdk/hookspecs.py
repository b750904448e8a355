"""The hooks a tradekernel plug-in can implement, grouped by the phase that calls them.

Implement a hook by writing a function with the hook's name in the plug-in's
entry-point module and marking it with :data:`tradekernel_sdk.hookimpl`. An
implementation may accept fewer arguments than the specification lists. A
function marked as a hook whose name is not below is refused at start, so a
misspelling never goes unnoticed.

Hooks are for discovery, registration and lifecycle only. Market data, order
events and timers reach the registered objects through the kernel's bus and
their own methods (``Strategy.on_book`` ...), never through a hook: a hook call
costs far more than a method call and would put every plug-in on the hot path.

Each registration hook receives a ``register`` callback and calls it once per
thing it contributes, ``register(name, item)``. Names are what the operator
writes in the configuration and must be unique across all plug-ins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from tradekernel_sdk.plugin import PROJECT_NAME

if TYPE_CHECKING:
    from tradekernel_sdk.plugin import ComponentFactory, KernelView, Register, RiskCheck
    from tradekernel_sdk.strategy import Strategy

__all__ = [
    "hookspec",
    "kernel_started",
    "kernel_stopping",
    "register_detectors",
    "register_features",
    "register_models",
    "register_risk_checks",
    "register_sentiment_sources",
    "register_strategies",
    "register_venues",
]

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Registration: called once while the kernel loads its plug-ins, before it
# builds anything. Each hook runs for one plug-in at a time; a plug-in whose
# hook raises is refused as a whole and the kernel starts without it.
# -------------------------------------------------------------------------


@hookspec
def register_strategies(register: Register[type[Strategy]]) -> None:
    """Register strategy classes: ``register("imbalance", ImbalanceStrategy)``.

    Each class subclasses :class:`tradekernel_sdk.Strategy` and declares its
    ``Config``; the operator enables one with a ``[strategies.<name>]`` table.
    """


@hookspec
def register_models(register: Register[ComponentFactory]) -> None:
    """Register factories of predictive models: ``register("fair_value", FairValueModel)``.

    The kernel builds only the models its configuration enables.
    """


@hookspec
def register_detectors(register: Register[ComponentFactory]) -> None:
    """Register factories of market-anomaly detectors: ``register("spoofing", Detector)``."""


@hookspec
def register_sentiment_sources(register: Register[ComponentFactory]) -> None:
    """Register factories of sentiment sources: ``register("news", NewsSentiment)``."""


@hookspec
def register_venues(register: Register[ComponentFactory]) -> None:
    """Register factories of venue connections: ``register("kraken", KrakenVenue)``.

    The venue's name is the one used in topics and instruments.
    """


@hookspec
def register_risk_checks(register: Register[RiskCheck]) -> None:
    """Register pre-trade risk checks: ``register("no_new_listings", no_new_listings)``.

    A check is ``check(request, context) -> RiskDecision | None`` (see
    ``docs/risk.md``); the risk engine runs it after its built-in checks, and a
    check that raises denies the order.
    """


@hookspec
def register_features(register: Register[ComponentFactory]) -> None:
    """Register factories of features computed from market data: ``register("ofi", Ofi)``."""


# -------------------------------------------------------------------------
# Lifecycle: called once each, in the order plug-ins were loaded for
# ``kernel_started`` and in the reverse order for ``kernel_stopping``. An
# exception is logged and reported; it stops neither the kernel nor the other
# plug-ins' hooks.
# -------------------------------------------------------------------------


@hookspec
def kernel_started(kernel: KernelView) -> None:
    """Act once every component has started and before market data flows.

    Keep it short: the kernel waits for every implementation to return.
    """


@hookspec
def kernel_stopping(kernel: KernelView) -> None:
    """Act when the kernel begins to stop, before its components are stopped.

    Release what :func:`kernel_started` acquired; the kernel still answers
    ``kernel.clock()``.
    """
