"""``tradekernel run`` finds components in its configuration and entry points; they trade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from kernel.journal import Journal
from kernel.service.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"
SPAWN = [sys.executable, "-m", "tradekernel_sdk.remote", "component_samples:RecordingImbalance"]
IMBALANCE = """
venue = "binance"
symbol = "BTCUSDT"
tick = 1_000_000
lot = 1_000
quantity = 100_000
max_position = 500_000
threshold_bps = 6000
cooldown_ns = 2_000_000_000
"""


def install_entry_point(site: Path) -> None:
    """Declare the component ``packaged_imbalance`` as an installed distribution would."""
    dist = site / "packaged_components-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: packaged-components\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[tradekernel.components]\npackaged_imbalance = packaged_components:COMPONENT\n"
    )
    (site / "packaged_components.py").write_text(
        'COMPONENT = "component_samples:RecordingImbalance"\n'
    )


def test_run_spawns_configured_and_entry_point_components_beside_in_process_strategies(
    tmp_path: Path,
) -> None:
    install_entry_point(tmp_path / "site")
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [kernel]
        state_dir = "{tmp_path / "state"}"

        [metrics]
        enabled = false

        [[replay]]
        venue = "binance"
        files = ["{DATA}"]
        speed = 40                    # the components trade on market time, as a live feed

        [strategies.inside]
        strategy = "imbalance"
        """)
        + IMBALANCE
        + textwrap.dedent(f"""
        [[components]]
        name = "spawned"
        command = {json.dumps(SPAWN)}
        [components.settings]
        """)
        + IMBALANCE
        + textwrap.dedent("""
        [[components]]
        name = "packaged"
        entry_point = "packaged_imbalance"
        [components.settings]
        """)
        + IMBALANCE
    )
    paths = [str(tmp_path / "site"), str(HERE), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    result = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "component spawned up: strategy" in result.stderr
    assert "component packaged up: strategy" in result.stderr
    with Journal.open(tmp_path / "state" / "journal.tkj", fsync="never") as journal:
        submitted = Counter(
            record.payload[0]
            for record in journal.records_since(0)
            if record.kind in ("submit", "deny")
        )
    assert submitted["inside"] > 0
    assert submitted["spawned"] > 0
    assert submitted["packaged"] > 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "x"}, "components[0]: give exactly one of endpoint, command and entry_point"),
        (
            {"name": "x", "endpoint": "127.0.0.1:1", "command": ["a"]},
            "components[0]: give exactly one of endpoint, command and entry_point",
        ),
        ({"name": "x", "endpoint": "localhost"}, "components[0].endpoint: expected host:port"),
        ({"endpoint": "127.0.0.1:1"}, "components[0].name: required"),
        ({"name": "x", "endpoint": "127.0.0.1:1", "colour": 1}, "components[0].colour: unknown"),
        (
            {"name": "x", "endpoint": "127.0.0.1:1", "heartbeat_ms": 0},
            "components[0].heartbeat_ms: must be between 10",
        ),
    ],
)
def test_a_wrong_components_table_names_the_field(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"components": [table]})


def test_components_tables_are_read_with_their_settings() -> None:
    config = parse_config(
        {
            "components": [
                {"name": "a", "endpoint": "127.0.0.1:7001", "settings": {"symbol": "BTCUSDT"}},
                {"name": "b", "command": ["python", "-m", "x"], "backoff_max_ms": 500},
            ]
        }
    )
    first, second = config.components
    assert (first.endpoint, dict(first.settings)) == ("127.0.0.1:7001", {"symbol": "BTCUSDT"})
    assert second.command == ("python", "-m", "x") and second.backoff_max_ms == 500


def test_mutual_tls_needs_the_component_ca_and_both_halves_of_the_kernel_certificate(
    tmp_path: Path,
) -> None:
    pem = tmp_path / "any.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    base = {"name": "x", "endpoint": "127.0.0.1:1"}
    with pytest.raises(ConfigError, match=r"components\[0\].tls_cert: give tls_cert and tls_key"):
        parse_config({"components": [{**base, "tls_ca": str(pem), "tls_cert": str(pem)}]})
    with pytest.raises(ConfigError, match=r"components\[0\].tls_ca: mutual TLS needs"):
        parse_config({"components": [{**base, "tls_cert": str(pem), "tls_key": str(pem)}]})
    with pytest.raises(ConfigError, match=r"components\[0\].tls_ca: no such file"):
        parse_config({"components": [{**base, "tls_ca": str(tmp_path / "missing.pem")}]})
    spec = parse_config({"components": [{**base, "tls_ca": str(pem)}]}).components[0]
    assert spec.tls_ca == pem and spec.tls_cert is None
