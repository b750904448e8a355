"""``tradekernel run`` with ``[serving]`` serves a model; a restart serves what was served."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kernel.journal import Journal
from serving.running import RunningKernel, kernel_head
from serving.support import BUNDLED_FILES, write_book_version

TOKEN = "serving-admin-token"


def kernel_config(tmp_path: Path) -> Path:
    config = tmp_path / "kernel.toml"
    config.write_text(
        kernel_head(tmp_path)
        + textwrap.dedent(f"""
        [[replay]]
        venue = "binance"
        files = ["{BUNDLED_FILES[0]}"]

        [serving]
        enabled = true
        repository = "{tmp_path / "models"}"

        [[serving.models]]
        name = "direction"
        instruments = ["binance.BTCUSDT"]
        version = "1"

        [strategies.model_btc]
        strategy = "model_signal"
        venue = "binance"
        symbol = "BTCUSDT"
        tick = 1_000_000
        lot = 1_000
        quantity = 100_000
        max_position = 300_000
        allow_short = true
        model = "direction"
        min_confidence_bps = 6_000
    """)
    )
    return config


def test_the_kernel_serves_a_model_and_a_restart_restores_its_stages(tmp_path: Path) -> None:
    for version in ("1", "2", "3"):
        write_book_version(tmp_path / "models", "direction", version)
    config = kernel_config(tmp_path)

    first = RunningKernel(config, TOKEN, model="direction")
    try:
        assert first.stages()["1"] == "production"  # the configured version
        for version in ("2", "3"):
            first.client.load_model("direction", version)
        first.client.promote_model("direction", "2")
        first.client.shadow_model("direction", "3")
    finally:
        log = first.stop()
    assert "serving direction" in log

    journal = tmp_path / "state" / "journal.tkj"
    with Journal.open(journal) as opened:
        records = list(opened.records_since(0))
    kinds = [record.kind for record in records]
    assert [kind for kind in kinds if kind.startswith("model_")] == [
        "model_load",
        "model_promote",
        "model_load",
        "model_load",
        "model_promote",
        "model_shadow",
    ]
    submits = [r for r in records if r.kind == "submit" and "model_btc" in repr(r.payload)]
    assert submits, "the model-signal strategy sent no order on the served predictions"

    second = RunningKernel(config, TOKEN, model="direction")
    try:
        assert second.stages() == {"1": "retired", "2": "production", "3": "shadow"}
    finally:
        log = second.stop()
    assert "6 journaled changes restored" in log
