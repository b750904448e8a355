"""Trading: strategies fed by the bus, their context, and the state risk checks against."""

from kernel.trading.context import MarketData, OpenOrderSnapshot, TradingContext, VenueMap
from kernel.trading.runner import (
    KernelStrategyContext,
    RunnerPolicy,
    StrategyRunner,
    StrategySlot,
)

__all__ = [
    "KernelStrategyContext",
    "MarketData",
    "OpenOrderSnapshot",
    "RunnerPolicy",
    "StrategyRunner",
    "StrategySlot",
    "TradingContext",
    "VenueMap",
]
