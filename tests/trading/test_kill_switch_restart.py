"""A kernel halted by its kill switch is still halted after a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from kernel.journal import replay

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"


def _run(config: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    trading = json.loads(done.stdout.strip().splitlines()[-1])["trading"]
    assert isinstance(trading, dict)
    return trading


def test_halt_is_journaled_and_restored(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [kernel]
        state_dir = "state"

        [metrics]
        enabled = false

        [[replay]]
        venue = "binance"
        files = ["{DATA}"]

        [strategies.imbalance_btc]
        strategy = "imbalance"
        venue = "binance"
        symbol = "BTCUSDT"
        tick = 1_000_000
        lot = 1_000
        quantity = 100_000
        max_position = 500_000
        allow_short = true
        threshold_bps = 3000
        cooldown_ns = 200_000_000

        [risk]
        max_daily_loss = "0.01"    # the first fees halt trading
    """)
    )
    first = _run(config)
    assert first["risk_state"] == "halted"
    filled_before = first["orders"].get("filled", 0)
    assert filled_before >= 1
    kinds = [record.kind for record in replay(tmp_path / "state" / "journal.tkj")]
    assert "risk_state" in kinds

    second = _run(config)
    assert second["risk_state"] == "halted"
    # Nothing new traded: every order of the second run was denied as halted.
    assert second["orders"].get("filled", 0) == filled_before
    assert second["denials"].get("trading_halted", 0) > 0
