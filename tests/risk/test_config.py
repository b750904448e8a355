"""Risk configuration: validated on construction, errors name the field, overrides merge."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kernel.risk import (
    InstrumentLimits,
    RateLimit,
    RiskConfig,
    RiskConfigError,
    parse_risk_config,
)

from .support import BTC, ETH

DOCS = Path(__file__).resolve().parents[2] / "docs" / "risk.md"


def test_default_config_has_every_limit_off_but_self_trade_prevention() -> None:
    config = RiskConfig()
    limits = config.limits_for(BTC)
    assert limits.max_position is None
    assert limits.max_order_notional_scaled is None
    assert config.order_rate is None
    assert config.self_trade_prevention


def test_instrument_override_replaces_only_the_fields_it_sets() -> None:
    config = RiskConfig(
        defaults=InstrumentLimits(max_order_notional=Decimal("1000"), max_open_orders=5),
        instruments={"binance.BTCUSDT": InstrumentLimits(max_open_orders=2)},
    )
    btc = config.limits_for(BTC)
    eth = config.limits_for(ETH)
    assert (btc.max_open_orders, eth.max_open_orders) == (2, 5)
    assert btc.max_order_notional == eth.max_order_notional == 1000 * 10**8


def test_limits_are_converted_to_the_instrument_fixed_point() -> None:
    config = RiskConfig(
        defaults=InstrumentLimits(max_position=Decimal("1.5"), min_order_notional=Decimal("10")),
        max_gross_exposure=Decimal("0.00000001"),
    )
    btc = config.limits_for(BTC)  # size precision 5
    eth = config.limits_for(ETH)  # size precision 4
    assert (btc.max_position, eth.max_position) == (150_000, 15_000)
    assert btc.min_order_notional == 10 * 10**8
    assert btc.max_gross_exposure == 1


def test_venue_order_rate_overrides_the_default_rate() -> None:
    default = RateLimit(Decimal(10), 20)
    okx = RateLimit(Decimal(5), 10)
    config = RiskConfig(order_rate=default, venue_order_rates={"okx": okx})
    assert config.rate_for("okx") is okx
    assert config.rate_for("binance") is default


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"defaults": InstrumentLimits(min_order_notional=Decimal(-1))},
            "defaults.min_order_notional: must be greater than 0, got -1",
        ),
        (
            {"defaults": InstrumentLimits(max_position=Decimal(-1))},
            "defaults.max_position: must be at least 0, got -1",
        ),
        (
            {"defaults": InstrumentLimits(max_order_notional=Decimal("NaN"))},
            "defaults.max_order_notional: expected a finite decimal number",
        ),
        (
            {"defaults": InstrumentLimits(max_open_orders=-1)},
            "defaults.max_open_orders: must be at least 0, got -1",
        ),
        (
            {"defaults": InstrumentLimits(price_band_bps=0)},
            "defaults.price_band_bps: must be at least 1, got 0",
        ),
        (
            {"max_gross_exposure": Decimal("0.000000001")},
            "max_gross_exposure: at most 8 decimals, got 1E-9",
        ),
        (
            {"max_gross_exposure": 1000},
            "max_gross_exposure: expected a finite decimal number, got 1000",
        ),
        (
            {
                "defaults": InstrumentLimits(max_order_notional=Decimal(100)),
                "instruments": {
                    "binance.BTCUSDT": InstrumentLimits(min_order_notional=Decimal(200))
                },
            },
            'instruments."binance.BTCUSDT".min_order_notional: 200 is above max_order_notional 100',
        ),
        (
            {"instruments": {"BTCUSDT": InstrumentLimits()}},
            'instruments."BTCUSDT": expected "venue.symbol"',
        ),
        (
            {"instruments": {"binance.BTCUSDT": InstrumentLimits(max_position=Decimal(-2))}},
            'instruments."binance.BTCUSDT".max_position: must be at least 0, got -2',
        ),
        ({"max_open_orders_per_venue": True}, "max_open_orders_per_venue: expected an integer"),
        (
            {"order_rate": RateLimit(Decimal(0), 1)},
            "order_rate.rate_per_s: must be greater than 0, got 0",
        ),
        ({"order_rate": RateLimit(Decimal(1), 0)}, "order_rate.burst: must be at least 1, got 0"),
        (
            {"venue_order_rates": {"okx": RateLimit(Decimal(1), 0)}},
            "venue_order_rates.okx.burst: must be at least 1",
        ),
        ({"max_daily_loss": Decimal(0)}, "max_daily_loss: must be greater than 0, got 0"),
        ({"max_drawdown": Decimal("-5")}, "max_drawdown: must be greater than 0, got -5"),
        ({"max_drawdown_bps": 10_001}, "max_drawdown_bps: must be at most 10000, got 10001"),
        ({"self_trade_prevention": "yes"}, "self_trade_prevention: expected true or false"),
    ],
)
def test_config_validation_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(RiskConfigError) as caught:
        RiskConfig(**config)
    assert str(caught.value).startswith(message), str(caught.value)


def test_toml_example_in_the_docs_parses() -> None:
    match = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None
    config = parse_risk_config(tomllib.loads(match.group(1))["risk"])
    assert config.max_gross_exposure == Decimal("250000")
    assert config.max_drawdown_bps == 500
    assert config.rate_for("okx") == RateLimit(Decimal(5), 10)
    assert config.rate_for("binance") == RateLimit(Decimal(10), 20)
    btc = config.limits_for(BTC)
    assert btc.max_position == 50_000
    assert btc.max_order_notional == 25_000 * 10**8
    assert btc.min_order_notional == 10 * 10**8
    assert config.limits_for(ETH).price_band_bps == 150


def test_toml_amounts_may_be_strings_integers_or_floats() -> None:
    config = parse_risk_config(
        {"max_gross_exposure": "1000.5", "max_daily_loss": 100, "max_drawdown": 0.1}
    )
    assert config.max_gross_exposure == Decimal("1000.5")
    assert config.max_daily_loss == Decimal(100)
    assert config.max_drawdown == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_gros_exposure": "1"}, "risk.max_gros_exposure: unknown setting"),
        ({"defaults": {"max_postion": "1"}}, "risk.defaults.max_postion: unknown setting"),
        ({"defaults": {"max_position": "a lot"}}, "risk.defaults.max_position: expected a decimal"),
        ({"defaults": {"max_position": "-1"}}, "risk.defaults.max_position: must be at least 0"),
        (
            {"defaults": {"max_open_orders": 1.5}},
            "risk.defaults.max_open_orders: expected an integer",
        ),
        (
            {"instruments": {"binance.BTCUSDT": {"price_band_bps": 0}}},
            'risk.instruments."binance.BTCUSDT".price_band_bps: must be at least 1',
        ),
        (
            {"instruments": {"binance.BTCUSDT": {"price_bands": 5}}},
            'risk.instruments."binance.BTCUSDT".price_bands: unknown setting',
        ),
        ({"order_rate": {"burst": 5}}, "risk.order_rate.rate_per_s: required"),
        ({"order_rate": {"rate_per_s": 5}}, "risk.order_rate.burst: required"),
        (
            {"venue_order_rates": {"okx": {"rate_per_s": "-1", "burst": 1}}},
            "risk.venue_order_rates.okx.rate_per_s: must be greater than 0",
        ),
        ({"max_daily_loss": "0.000000001"}, "risk.max_daily_loss: at most 8 decimals"),
        ({"max_daily_loss": True}, "risk.max_daily_loss: expected a decimal number"),
        ({"max_drawdown": "inf"}, "risk.max_drawdown: expected a finite number"),
        ({"self_trade_prevention": 1}, "risk.self_trade_prevention: expected true or false"),
        ({"defaults": 3}, "risk.defaults: expected a table"),
    ],
)
def test_toml_errors_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RiskConfigError) as caught:
        parse_risk_config(raw)
    assert str(caught.value).startswith(message), str(caught.value)
