"""The feature API: typed parameters, versioned specs, scales, bars from trades, packaging."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tradekernel_models.plugin
from tradekernel_models.features import DEFAULT_FEATURE_SET, FEATURES, OrderFlowImbalance
from tradekernel_sdk.features import (
    BarBuilder,
    FeatureParamsError,
    FeatureSpec,
    Output,
    ReplayBook,
    to_float,
)
from tradekernel_sdk.plugin import RegistrationKind
from tradekernel_sdk.types import AggressorSide, BookDelta, BookSnapshot, Trade

DISTRIBUTION = Path(__file__).resolve().parents[2] / "plugins" / "tradekernel-models"


def test_parameters_are_typed_and_checked_with_the_field_named() -> None:
    with pytest.raises(
        FeatureParamsError, match=r"'ofi'.*Expected `int`, got `str` - at `\$.window`"
    ):
        OrderFlowImbalance.from_params({"window": "ten"})
    with pytest.raises(FeatureParamsError, match="unknown field `windw`"):
        OrderFlowImbalance.from_params({"windw": 10})
    with pytest.raises(FeatureParamsError, match="window must be positive"):
        OrderFlowImbalance.from_params({"window": 0})
    with pytest.raises(FeatureParamsError, match="depths must be distinct positive"):
        FEATURES["book_imbalance"].from_params({"depths": [1, 1]})
    with pytest.raises(FeatureParamsError, match="fast must be shorter than slow"):
        FEATURES["macd"].from_params({"fast": 26, "slow": 12})


def test_a_spec_rebuilds_the_same_feature_and_refuses_another_version() -> None:
    feature = FEATURES["depth_slope"].from_params({"depths": [3, 7]})
    spec = feature.spec()
    assert spec == FeatureSpec("depth_slope", 1, {"depths": [3, 7]})
    rebuilt = FEATURES["depth_slope"].from_spec(spec)
    assert [output.name for output in rebuilt.outputs] == [
        "bid_slope_3",
        "ask_slope_3",
        "bid_slope_7",
        "ask_slope_7",
    ]
    with pytest.raises(FeatureParamsError, match="installed definition is 'depth_slope' version 1"):
        FEATURES["depth_slope"].from_spec(FeatureSpec("depth_slope", 2, {}))


def test_every_feature_has_a_unique_name_a_version_and_documented_outputs() -> None:
    for name, cls in FEATURES.items():
        feature = cls()
        assert feature.name == name and feature.version >= 1 and feature.inputs
        assert cls.__doc__ and feature.outputs
        assert all(output.scale >= 1 for output in feature.outputs)
        assert all(output.scale == 1 for output in feature.outputs if not output.exact)
        assert feature.values == (None,) * len(feature.outputs)
    assert {spec.name for spec in DEFAULT_FEATURE_SET.specs} == set(FEATURES)


def test_scaled_values_convert_to_what_they_mean_and_undefined_to_nan() -> None:
    assert to_float(-250_000_000, Output("imbalance", 10**9, unit="ratio")) == -0.25
    assert to_float(201, Output("mid", 2, unit="price")) == 100.5
    assert to_float(0.5, Output("rsi", 1, exact=False)) == 0.5
    assert math.isnan(to_float(None, Output("ofi")))


def trade(price: int, size: int, ts: int) -> Trade:
    return Trade("binance", "BTCUSDT", price, size, AggressorSide.BUY, str(ts), ts, ts)


def test_bars_from_trades_close_when_a_later_interval_starts_and_skip_empty_intervals() -> None:
    builder = BarBuilder("binance", "BTCUSDT", 10)
    completed = [
        builder.add(t)
        for t in (trade(100, 1, 1), trade(105, 2, 4), trade(98, 1, 9), trade(101, 5, 35))
    ]
    assert completed[:3] == [None, None, None]
    bar = completed[3]
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts_open) == (
        100,
        105,
        98,
        98,
        4,
        0,
    )
    # A trade stamped in an interval already closed joins the open bar.
    assert builder.add(trade(90, 1, 12)) is None
    last = builder.add(trade(100, 1, 41))
    assert last is not None and (last.low, last.volume, last.ts_open) == (90, 6, 30)


levels = st.lists(st.tuples(st.integers(1, 30), st.integers(0, 9)), max_size=8)


@given(st.lists(st.tuples(st.booleans(), levels, levels), max_size=30), st.integers(0, 12))
def test_replay_book_depth_views_equal_a_sorted_dictionary(
    updates: list[tuple[bool, list[tuple[int, int]], list[tuple[int, int]]]], depth: int
) -> None:
    book = ReplayBook()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for is_snapshot, bid_levels, ask_levels in updates:
        if is_snapshot:
            bids.clear()
            asks.clear()
            book.apply(BookSnapshot("v", "s", tuple(bid_levels), tuple(ask_levels), 0, 0, 0))
        else:
            book.apply(BookDelta("v", "s", tuple(bid_levels), tuple(ask_levels), 0, 0, 0, 0))
        for side, changes in ((bids, bid_levels), (asks, ask_levels)):
            for price, size in changes:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        assert book.bid_levels(depth) == sorted(bids.items(), reverse=True)[:depth]
        assert book.ask_levels(depth) == sorted(asks.items())[:depth]
        assert book.bid_levels() == sorted(bids.items(), reverse=True)
        assert book.best_bid() == (max(bids.items()) if bids else None)
        assert book.best_ask() == (min(asks.items()) if asks else None)


def test_the_plugin_registers_every_feature(plugin_registrations) -> None:
    registered = plugin_registrations(tradekernel_models.plugin)
    assert registered[RegistrationKind.FEATURE] == FEATURES


def test_the_distribution_depends_on_the_sdk_alone_and_on_torch_only_to_train() -> None:
    project = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["tradekernel-sdk==0.1.0"]
    assert "torch==2.13.0" in project["optional-dependencies"]["train"]
    assert project["entry-points"]["tradekernel"] == {"models": "tradekernel_models.plugin"}


def test_importing_the_plugin_and_its_features_never_imports_torch_or_the_kernel() -> None:
    code = (
        "import sys, tradekernel_models.plugin, tradekernel_models.features; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'kernel'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
