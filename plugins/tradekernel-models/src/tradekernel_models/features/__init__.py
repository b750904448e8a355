"""The streaming features of tradekernel-models, by the name each is registered under.

Book features read the live book after each update, trade features each public
trade, bar indicators each completed bar; see ``docs/features.md`` for every
definition and the scale of every output.
"""

from __future__ import annotations

from tradekernel_models.features.bars import (
    AverageTrueRange,
    BollingerBands,
    ExponentialMovingAverage,
    GarmanKlassVolatility,
    MovingAverageConvergenceDivergence,
    ParkinsonVolatility,
    RelativeStrengthIndex,
)
from tradekernel_models.features.book import (
    PRICE_SUBUNITS,
    SLOPE_SCALE,
    BookImbalance,
    DepthSlope,
    Microprice,
    OrderFlowImbalance,
    Spread,
)
from tradekernel_models.features.trades import SignedTradeFlow, VwapDeviation
from tradekernel_sdk.features import Feature, FeatureSet, FeatureSpec

__all__ = [
    "BAR_FEATURES",
    "BOOK_FEATURES",
    "DEFAULT_FEATURE_SET",
    "FEATURES",
    "IMBALANCE_FEATURE_SET",
    "PRICE_SUBUNITS",
    "SLOPE_SCALE",
    "TRADE_FEATURES",
    "AverageTrueRange",
    "BollingerBands",
    "BookImbalance",
    "DepthSlope",
    "ExponentialMovingAverage",
    "GarmanKlassVolatility",
    "Microprice",
    "MovingAverageConvergenceDivergence",
    "OrderFlowImbalance",
    "ParkinsonVolatility",
    "RelativeStrengthIndex",
    "SignedTradeFlow",
    "Spread",
    "VwapDeviation",
]

BOOK_FEATURES: tuple[type[Feature], ...] = (
    BookImbalance,
    Microprice,
    Spread,
    DepthSlope,
    OrderFlowImbalance,
)
TRADE_FEATURES: tuple[type[Feature], ...] = (SignedTradeFlow, VwapDeviation)
BAR_FEATURES: tuple[type[Feature], ...] = (
    ExponentialMovingAverage,
    RelativeStrengthIndex,
    MovingAverageConvergenceDivergence,
    AverageTrueRange,
    BollingerBands,
    ParkinsonVolatility,
    GarmanKlassVolatility,
)

FEATURES: dict[str, type[Feature]] = {
    feature.name: feature for feature in BOOK_FEATURES + TRADE_FEATURES + BAR_FEATURES
}
"""Every feature of the plug-in, by its registered name."""

DEFAULT_BAR_INTERVAL_NS = 1_000_000_000
"""One-second bars built from trades, for the bar indicators of the default set."""

DEFAULT_FEATURE_SET = FeatureSet(
    tuple(FeatureSpec(feature.name, feature.version) for feature in FEATURES.values()),
    bar_interval_ns=DEFAULT_BAR_INTERVAL_NS,
)
"""Every feature with its default parameters, bar indicators on one-second trade bars."""

IMBALANCE_FEATURE_SET = FeatureSet(
    (
        FeatureSpec(BookImbalance.name, BookImbalance.version),
        FeatureSpec(OrderFlowImbalance.name, OrderFlowImbalance.version),
        FeatureSpec(SignedTradeFlow.name, SignedTradeFlow.version),
    )
)
"""The imbalance features: book imbalance at depths 1, 5 and 10, OFI and signed trade flow."""
