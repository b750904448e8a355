"""A component version goes through the same rollout as an in-process one, in a running kernel.

``tradekernel run`` serves model ``direction`` with version 1 in process and
version 2 answered by a real model component in its own process
(``[[serving.models.components]]``, dialed from ``[[components]]``), while the
bundled BTCUSDT recording replays in real time and the model-signal strategy
trades on the published predictions. Over the API and the CLI the component
version is shadowed (agreement and latency counted, nothing acted on), promoted,
rolled back; the journal on disk holds every change before it acts and a
restart finds the same stages; killing the component while it answers hands
over to version 1, and ListModels, GetStatus and the log say so.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.journal import Journal
from serving.running import RunningKernel, kernel_head
from serving.support import BUNDLED_FILES, start_model_component, write_book_version
from tradekernel_sdk.client import AlreadyExists, ApiError, FailedPrecondition, NotFound

TOKEN = "rollout-admin-token"


def kernel_config(tmp_path: Path, component_address: str) -> Path:
    config = tmp_path / "kernel.toml"
    config.write_text(
        kernel_head(tmp_path)
        + textwrap.dedent(f"""
        [[replay]]
        venue = "binance"
        files = ["{BUNDLED_FILES[0]}"]
        speed = 1.0

        [[components]]
        name = "direction_v2"
        endpoint = "{component_address}"
        backoff_initial_ms = 100
        backoff_max_ms = 500

        [serving]
        enabled = true
        repository = "{tmp_path / "models"}"

        [[serving.models]]
        name = "direction"
        instruments = ["binance.BTCUSDT"]
        version = "1"

        [[serving.models.components]]
        version = "2"
        component = "direction_v2"

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
        min_confidence_bps = 3_400
    """)
    )
    return config


def refused(call: Callable[[], Any], kind: type[ApiError]) -> str:
    with pytest.raises(kind) as raised:
        call()
    return str(raised.value)


def journal_records(tmp_path: Path) -> list[tuple[str, Any]]:
    with Journal.open(tmp_path / "state" / "journal.tkj") as opened:
        return [(record.kind, record.payload) for record in opened.records_since(0)]


def test_a_component_version_is_shadowed_promoted_rolled_back_restored_and_falls_back(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    for version in ("1", "2"):
        write_book_version(root, "direction", version)
    component, address = start_model_component(
        tmp_path, root / "direction" / "2", [("binance", "BTCUSDT")]
    )
    config = kernel_config(tmp_path, address)
    try:
        first = RunningKernel(config, TOKEN, model="direction")
        try:
            first.until("the component version is loaded and up", lambda m: m["2"].component.up)
            listed = first.models()
            assert (listed["1"].stage, listed["2"].stage) == ("production", "loaded")
            assert listed["2"].uri == "component:direction_v2" and listed["2"].sha256 == ""

            # Refusals change nothing and say why.
            message = refused(
                lambda: first.client.load_model("direction", "9", "component:nowhere"), NotFound
            )
            assert "no component 'nowhere' in [[components]]" in message
            message = refused(
                lambda: first.client.load_model("direction", "9", "component:direction_v2"),
                AlreadyExists,
            )
            assert "already answers for direction:2" in message
            message = refused(
                lambda: first.client.shadow_model("direction", "1"), FailedPrecondition
            )
            assert "production already" in message
            assert first.stages() == {"1": "production", "2": "loaded"}

            # Shadow, from the CLI: compared with production, never acted on.
            code, out, err = first.cli("models", "shadow", "direction:2", "--json")
            assert code == 0, err
            shadowed = json.loads(out)["model"]
            assert shadowed["stage"] == "shadow" and shadowed["component"]["up"] is True
            first.until("shadow answers compared", lambda m: m["2"].metrics.compared >= 30)
            listed = first.models()
            shadow = listed["2"].metrics
            assert 0 < shadow.agreed < shadow.compared
            assert shadow.latency_p50_ns > 0 and shadow.errors == 0
            # Production acted on every event the shadow was compared on.
            assert shadow.published == 0 and listed["1"].metrics.published >= shadow.compared

            promoted = first.client.promote_model("direction", "2")
            assert promoted.stage == "production" and promoted.component.up
            first.until("the component's answers act", lambda m: m["2"].metrics.published >= 30)
            assert first.stages() == {"1": "retired", "2": "production"}
            rolled = first.client.rollback_model("direction", "2")
            assert (rolled.version, rolled.stage) == ("1", "production")
            acted = first.models()["1"].metrics.published
            first.until("version 1 acts again", lambda m: m["1"].metrics.published > acted + 10)
            first.client.shadow_model("direction", "2")
            assert first.stages() == {"1": "production", "2": "shadow"}
        finally:
            first.stop()

        records = journal_records(tmp_path)
        changes = [(kind, payload) for kind, payload in records if kind.startswith("model_")]
        assert changes == [
            ("model_load", ["direction", "1", "", changes[0][1][3]]),
            ("model_promote", ["direction", "1"]),
            ("model_load", ["direction", "2", "component:direction_v2", ""]),
            ("model_shadow", ["direction", "2"]),
            ("model_promote", ["direction", "2"]),
            ("model_rollback", ["direction", "2"]),
            ("model_shadow", ["direction", "2"]),
        ]

        second = RunningKernel(config, TOKEN, model="direction")
        try:
            assert second.stages() == {"1": "production", "2": "shadow"}  # from the journal
            second.until("the component is up again", lambda m: m["2"].component.up)
            assert second.models()["2"].metrics.published == 0
            second.client.promote_model("direction", "2")
            second.until("the component's answers act", lambda m: m["2"].metrics.published > 10)
            component.send_signal(signal.SIGKILL)  # mid-stream
            component.wait(10)
            second.until("the fallback is reported", lambda m: not m["2"].component.up)
            listed = second.models()
            assert listed["2"].stage == "production"  # its stage does not move
            assert listed["2"].component.stand_in == "1" and listed["2"].component.down_reason
            acted = listed["1"].metrics.published
            second.until(
                "the in-process version acts in its place",
                lambda m: m["1"].metrics.published > acted + 10,
            )
            code, out, err = second.cli("models", "list")
            assert code == 0 and "component:direction_v2 (down; 1 answers)" in out, err
            serving = next(c for c in second.client.status().components if c.name == "serving")
            assert "direction: component version 2 is down" in serving.detail
            assert "the in-process version 1 answers" in serving.detail
        finally:
            log = second.stop()
        assert "7 journaled changes restored" in log
        assert re.search(
            r"component version 2 \(direction_v2\) is down \(.+\); "
            r"the in-process version 1 answers",
            log,
        )
    finally:
        if component.poll() is None:
            component.kill()
            component.wait(10)
