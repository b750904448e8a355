"""tradekernel-strategies: imbalance, momentum, Avellaneda-Stoikov market making, model signal.

The plug-in registers four strategies with the kernel through the
``tradekernel`` entry-point group:

``imbalance``
    :class:`~tradekernel_strategies.imbalance.Imbalance`: trade with the
    size imbalance of the top of the book.
``momentum``
    :class:`~tradekernel_strategies.momentum.Momentum`: trade the cross of a
    fast and a slow moving average of the mid.
``avellaneda_stoikov``
    :class:`~tradekernel_strategies.avellaneda_stoikov.AvellanedaStoikov`:
    quote both sides around an inventory-skewed reservation price.
``model_signal``
    :class:`~tradekernel_strategies.model_signal.ModelSignal`: trade the
    direction a served model predicts (``on_prediction``), when confident.

Each is configured by a ``[strategies.<name>]`` table; prices and sizes in it
are fixed-point integers at the instrument's precisions.
"""

from __future__ import annotations

from tradekernel_sdk import Register, Strategy, hookimpl
from tradekernel_strategies.avellaneda_stoikov import AvellanedaStoikov
from tradekernel_strategies.imbalance import Imbalance
from tradekernel_strategies.model_signal import ModelSignal
from tradekernel_strategies.momentum import Momentum

__all__ = [
    "STRATEGIES",
    "TRADEKERNEL_API",
    "AvellanedaStoikov",
    "Imbalance",
    "ModelSignal",
    "Momentum",
    "register_strategies",
]

__version__ = "0.1.0"

TRADEKERNEL_API = "1.0"
"""The plug-in API version these strategies are written against."""

STRATEGIES: dict[str, type[Strategy]] = {
    "imbalance": Imbalance,
    "momentum": Momentum,
    "avellaneda_stoikov": AvellanedaStoikov,
    "model_signal": ModelSignal,
}
"""Every strategy of the plug-in, by the name it is registered under."""


@hookimpl
def register_strategies(register: Register[type[Strategy]]) -> None:
    """Register every strategy under its configuration name."""
    for name, strategy in STRATEGIES.items():
        register(name, strategy)
