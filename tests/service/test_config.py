"""Configuration errors name the field they are about."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.service.config import ConfigError, default_config, load_config, parse_config


def test_default_config_replays_the_bundled_data_through_paper() -> None:
    config = default_config()
    assert [replay.venue for replay in config.replay] == ["binance"]
    assert all(path.exists() for path in config.replay[0].files)
    assert config.paper.enabled
    assert config.metrics.host == "127.0.0.1"


def test_full_configuration_is_parsed(tmp_path: Path, bundled_data: Path) -> None:
    data = bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz"
    path = tmp_path / "kernel.toml"
    path.write_text(f"""
[kernel]
shutdown_timeout_s = 3

[logging]
level = "debug"
json = true

[metrics]
port = 0

[[replay]]
venue = "binance"
files = ["{data}"]
speed = 50
verify = false

[paper]
maker_fee_bps = 0
latency_ms = 20
""")
    config = load_config(path)
    assert config.logging.level == "DEBUG"
    assert config.logging.json
    assert config.replay[0].speed == 50.0
    assert not config.replay[0].verify
    assert config.paper.latency_ms == 20.0
    assert config.shutdown_timeout_s == 3.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"metrics": {"port": 70000}}, "metrics.port: must be between 0 and 65535"),
        ({"metrics": {"prot": 1}}, "metrics.prot: unknown setting"),
        ({"replay": [{"venue": "nasdaq", "files": ["x"]}]}, "replay[0].files: no such file"),
        ({"replay": [{"files": []}]}, "replay[0].files: at least one file"),
        ({"paper": {"taker_fee_bps": "5"}}, "paper.taker_fee_bps: expected a number"),
        ({"logging": {"level": "LOUD"}}, "logging.level: expected one of"),
        ({"replay": {"venue": "binance"}}, "replay: expected an array of tables"),
        ({"surprise": {}}, "surprise: unknown setting"),
    ],
)
def test_invalid_settings_are_refused_with_the_field_named(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)


def test_bad_speed_and_venue_are_named(bundled_data: Path) -> None:
    data = str(bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz")
    with pytest.raises(ConfigError, match=r"replay\[0\]\.speed: expected a positive number"):
        parse_config({"replay": [{"venue": "binance", "files": [data], "speed": -1}]})
    with pytest.raises(ConfigError, match=r"replay\[0\]\.venue: expected one of"):
        parse_config({"replay": [{"venue": "nasdaq", "files": [data]}]})


def test_missing_and_invalid_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[metrics\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_example_deployment_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "deploy" / "kernel.example.toml")
    assert [replay.venue for replay in config.replay] == ["binance", "okx"]
    assert config.metrics.host == "127.0.0.1"


def test_api_tokens_come_from_config_and_environment() -> None:
    config = parse_config(
        {"api": {"enabled": True, "port": 0, "tokens": {"ops": ["read", "admin"]}}},
        environ={"TRADEKERNEL_API_TOKENS": "bot=read+trade"},
    )
    assert config.api.tokens == {
        "ops": frozenset({"read", "admin"}),
        "bot": frozenset({"read", "trade"}),
    }


@pytest.mark.parametrize(
    ("raw", "environ", "message"),
    [
        ({"api": {"tokens": {"x": ["root"]}}}, {}, "api.tokens.<token>: expected a list of scopes"),
        ({}, {"TRADEKERNEL_API_TOKENS": "bot"}, "TRADEKERNEL_API_TOKENS: expected token=scope"),
        ({}, {"TRADEKERNEL_API_TOKENS": "bot=god"}, "TRADEKERNEL_API_TOKENS: expected"),
        ({"api": {"prot": 1}}, {}, "api.prot: unknown setting"),
    ],
)
def test_invalid_api_settings_are_refused(
    raw: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("<", "<")):
        parse_config(raw, environ=environ)


def test_live_venues_are_parsed_and_checked() -> None:
    config = parse_config(
        {
            "live": [
                {
                    "venue": "binance",
                    "symbols": ["BTCUSDT", "ETHUSDT"],
                    "ws_url": "ws://127.0.0.1:9001",
                    "rest_url": "http://127.0.0.1:9001",
                }
            ]
        }
    )
    (live,) = config.live
    assert live.venue == "binance"
    assert live.symbols == ("BTCUSDT", "ETHUSDT")
    assert live.ws_url == "ws://127.0.0.1:9001"
    with pytest.raises(ConfigError, match=r"live\[0\].symbols: at least one symbol"):
        parse_config({"live": [{"venue": "okx", "symbols": []}]})
    with pytest.raises(ConfigError, match=r"live\[0\].venue"):
        parse_config({"live": [{"venue": "nasdaq", "symbols": ["AAPL"]}]})
    with pytest.raises(ConfigError, match=r"live\[1\].venue: okx is already a data source"):
        twice = [{"venue": "okx", "symbols": ["A"]}, {"venue": "okx", "symbols": ["B"]}]
        parse_config({"live": twice})
    with pytest.raises(ConfigError, match=r"live\[0\].wsurl"):
        parse_config({"live": [{"venue": "okx", "symbols": ["A"], "wsurl": "x"}]})
