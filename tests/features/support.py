"""Features live (an engine on a replay) and offline (batch), compared with the reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from features.reference import Settings
from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.features import FeatureEngine, FeatureVector, recorded_events
from kernel.features.engine import feature_topic
from tradekernel_models.features import FEATURES
from tradekernel_sdk.features import FeatureSet, FeatureSpec, FeatureTable, Output
from tradekernel_sdk.types import MarketEvent

RELATIVE_TOLERANCE = Decimal("1e-9")
"""Real-valued features agree with the 60-digit reference to this relative error, or ..."""
PRICE_ABSOLUTE_TOLERANCE = Decimal("1e-12")
"""... for price-valued ones, to this share of the price level (differences of EMAs cancel)."""
VOLATILITY_ABSOLUTE_TOLERANCE = Decimal("1e-15")


def feature_set(settings: Settings) -> FeatureSet:
    """Every feature, with the parameters of ``settings``."""
    return FeatureSet(
        tuple(
            FeatureSpec(name, FEATURES[name].version, params)
            for name, params in settings.feature_params().items()
        ),
        bar_interval_ns=settings.bar_interval_ns,
    )


def replay_with_engine(
    paths: Sequence[Path], venue: str, features: FeatureSet
) -> tuple[list[MarketEvent], dict[tuple[str, str], list[FeatureVector]], FeatureEngine]:
    """Replay captures through the venue's feed and the bus into a feature engine.

    Return the published events, every vector the engine published per
    instrument (one per book, trade or bar event), and the engine.
    """
    bus = Bus()
    feed = create_feed(venue, bus)
    engine = FeatureEngine(bus, features, FEATURES, books=lambda _, symbol: feed.book(symbol))
    engine.start()
    vectors: dict[tuple[str, str], list[FeatureVector]] = {}

    def collect(vector: FeatureVector) -> None:
        vectors.setdefault((vector.venue, vector.symbol), []).append(vector)

    # Vectors are published only to listeners; listen on every instrument of the venue.
    bus.subscribe(feature_topic(venue, "*"), collect)
    events = recorded_events(paths, venue, bus=bus, feed=feed)
    engine.stop()
    return events, vectors, engine


def mismatches(
    table: FeatureTable, reference: list[dict[str, Any]], price_level: int, every: int = 1
) -> list[str]:
    """Describe every cell where the table and the reference disagree (beyond tolerance)."""
    problems: list[str] = []
    assert len(table.rows) == len(reference), (len(table.rows), len(reference))
    for index in range(0, len(table.rows), every):
        row, expected = table.rows[index], reference[index]
        for column, output, value in zip(table.columns, table.outputs, row, strict=True):
            wanted = expected[column]
            if not agrees(value, wanted, output, price_level):
                problems.append(f"row {index} {column}: got {value!r}, reference {wanted!r}")
    return problems


def agrees(value: Any, wanted: Any, output: Output, price_level: int) -> bool:
    """Whether one value matches the reference: exactly, or within the stated tolerance."""
    if value is None or wanted is None:
        return value is None and wanted is None
    if output.exact:
        return type(value) is int and value == wanted
    if not isinstance(value, float) or not math.isfinite(value):
        return False
    error = abs(Decimal(value) - Decimal(wanted))
    allowed = RELATIVE_TOLERANCE * abs(Decimal(wanted))
    if output.unit == "price":
        allowed = max(allowed, PRICE_ABSOLUTE_TOLERANCE * price_level)
    elif output.unit == "log-return":
        allowed = max(allowed, VOLATILITY_ABSOLUTE_TOLERANCE)
    return error <= allowed
