"""tradekernel SDK: what plug-ins and components build on.

Prices and sizes are fixed-point integers (:mod:`tradekernel_sdk.fixedpoint`);
market events are immutable structs (:mod:`tradekernel_sdk.types`) that encode
to MessagePack (:mod:`tradekernel_sdk.codec`).

Writing a plug-in
=================

A plug-in is an installed distribution that names a module in the
``tradekernel`` entry-point group. The module declares the plug-in API version
it targets and implements hooks from :mod:`tradekernel_sdk.hookspecs`, marked
with :data:`hookimpl`::

    # src/myplugin/__init__.py
    from tradekernel_sdk import OrderIntent, Strategy, hookimpl
    from tradekernel_sdk.orders import OrderSide, OrderType

    TRADEKERNEL_API = "1.0"


    class Imbalance(Strategy):
        class Config(Strategy.Config, frozen=True):
            venue: str
            symbol: str
            threshold_bps: int = 20
            lots: int = 1

        config: Config

        def on_book(self, update, book):
            ...  # decide, then self.context.submit(OrderIntent(...))


    @hookimpl
    def register_strategies(register):
        register("imbalance", Imbalance)

and its ``pyproject.toml`` points the entry point at that module::

    [project]
    name = "myplugin"
    version = "0.1.0"
    dependencies = ["tradekernel-sdk>=0.1"]

    [project.entry-points.tradekernel]
    myplugin = "myplugin"

Once installed in the kernel's environment, ``tradekernel plugins list`` shows
it, and a ``[strategies.imbalance]`` table in the configuration runs it.

* ``TRADEKERNEL_API = "MAJOR.MINOR"`` is required: the kernel providing
  :data:`API_VERSION` loads a plug-in whose major equals its own and whose
  minor is not greater.
* A function marked with :data:`hookimpl` whose name is not a hook refuses the
  plug-in at start, with the name of the hook it probably meant.
* Hooks register things and follow the kernel's start and stop; market data
  reaches strategies through their ``on_<event>`` methods, never through hooks.
* ``pytest -p tradekernel_sdk.testing`` gives the plug-in's tests a
  ``strategy_harness`` fixture (see :mod:`tradekernel_sdk.testing`).

The full guide is ``docs/plugins.md`` in the kernel's repository.
"""

from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError, from_fixed, to_fixed
from tradekernel_sdk.plugin import API_VERSION, KernelView, Register, hookimpl
from tradekernel_sdk.strategy import (
    BookView,
    OrderIntent,
    Strategy,
    StrategyConfigError,
    StrategyContext,
    load_strategy_config,
)
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    MarketEvent,
    Quote,
    Trade,
)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "AggressorSide",
    "Bar",
    "BookDelta",
    "BookSnapshot",
    "BookState",
    "BookStatus",
    "BookView",
    "FixedConverter",
    "FixedPointError",
    "Instrument",
    "KernelView",
    "Level",
    "MarketEvent",
    "OrderIntent",
    "Quote",
    "Register",
    "Strategy",
    "StrategyConfigError",
    "StrategyContext",
    "Trade",
    "from_fixed",
    "hookimpl",
    "load_strategy_config",
    "to_fixed",
]
