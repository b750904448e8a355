"""The pre-trade risk engine: every order intent passes it before it reaches a venue.

See ``docs/risk.md`` for the checks, their order, the trading states and the
kill switch.
"""

from kernel.risk.checks import Rounding, notional, round_to_lot, round_to_tick
from kernel.risk.config import (
    NOTIONAL_PRECISION,
    InstrumentLimits,
    RateLimit,
    RiskConfig,
    RiskConfigError,
    parse_risk_config,
)
from kernel.risk.context import OpenOrder, OpenOrderView, RiskContext, StaticRiskContext
from kernel.risk.engine import RISK_EVENTS_TOPIC, CustomCheck, RiskEngine
from kernel.risk.messages import (
    APPROVED,
    DenialReason,
    OrderDenied,
    RiskDecision,
    RiskEvent,
    TradingState,
    TradingStateChanged,
)
from kernel.risk.ratelimit import TokenBucket

__all__ = [
    "APPROVED",
    "NOTIONAL_PRECISION",
    "RISK_EVENTS_TOPIC",
    "CustomCheck",
    "DenialReason",
    "InstrumentLimits",
    "OpenOrder",
    "OpenOrderView",
    "OrderDenied",
    "RateLimit",
    "RiskConfig",
    "RiskConfigError",
    "RiskContext",
    "RiskDecision",
    "RiskEngine",
    "RiskEvent",
    "Rounding",
    "StaticRiskContext",
    "TokenBucket",
    "TradingState",
    "TradingStateChanged",
    "notional",
    "parse_risk_config",
    "round_to_lot",
    "round_to_tick",
]
