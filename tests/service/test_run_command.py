"""``tradekernel run`` as an operator sees it: a real process, real signals, a real endpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kernel.service.lifecycle import Lifecycle

TRADEKERNEL = [sys.executable, "-m", "kernel"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_default_run_replays_bundled_data_and_reports_a_clean_summary() -> None:
    done = subprocess.run(
        [*TRADEKERNEL, "run", "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    totals = summary["totals"]
    assert totals["frames"] == 24_000
    assert totals["gaps"] == 0
    assert totals["oracle_mismatches"] == 0
    assert totals["oracle_checks"] > 300
    assert totals["level_updates"] > 60_000
    assert summary["paper"]["fills"] > 0
    trading = summary["trading"]
    assert set(trading["strategies"]) == {"imbalance_btc", "market_maker_btc", "momentum_eth"}
    assert not any(figures["errors"] for figures in trading["strategies"].values())
    assert trading["orders"].get("filled", 0) > 10
    assert trading["tick_to_order_ns"]["total"]["count"] > 10
    assert trading["journal_records"] > trading["tick_to_order_ns"]["total"]["count"]
    assert summary["shutdown_reason"] == "replay finished"


def test_default_run_prints_progress_and_a_human_summary() -> None:
    done = subprocess.run(
        [*TRADEKERNEL, "run"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"replay:binance: [\d,]+ frames", done.stderr)
    assert "oracle checks" in done.stdout
    assert "stopped because   replay finished" in done.stdout


def _start_paced_kernel(tmp_path: Path, bundled_data: Path) -> tuple[subprocess.Popen[str], int]:
    data = bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz"
    config = tmp_path / "paced.toml"
    config.write_text(
        f'[metrics]\nport = 0\n\n[[replay]]\nvenue = "binance"\nfiles = ["{data}"]\nspeed = 1\n'
    )
    process = subprocess.Popen(
        [*TRADEKERNEL, "run", "--config", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    port = 0
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
        if found:
            port = int(found.group(1))
        if "ready:" in line:
            break
    assert port, "the kernel never reported its metrics endpoint"
    return process, port


def test_sigterm_stops_gracefully_and_metrics_are_served_meanwhile(
    tmp_path: Path, bundled_data: Path
) -> None:
    process, port = _start_paced_kernel(tmp_path, bundled_data)
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                body = reply.read().decode()
            found = re.search(r'tradekernel_frames_total\{venue="binance"\} (\S+)', body)
            if found and float(found.group(1)) > 0:
                break
            time.sleep(0.1)
        assert re.search(r'tradekernel_frames_total\{venue="binance"\} [1-9]', body)
        assert "tradekernel_stage_latency_seconds_bucket" in body
        assert 'tradekernel_gaps_total{venue="binance"} 0.0' in body
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "stopped because   SIGTERM" in stdout
    assert "stopping replay:binance" in stderr


def test_second_signal_forces_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    lifecycle = Lifecycle([])
    lifecycle._on_signal(signal.SIGINT)
    assert lifecycle.shutdown.reason == "SIGINT"
    assert exits == []
    lifecycle._on_signal(signal.SIGINT)
    assert exits == [128 + signal.SIGINT]


def test_invalid_config_exits_with_status_2_and_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[metrics]\nport = -1\n")
    done = subprocess.run(
        [*TRADEKERNEL, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert done.returncode == 2
    assert "metrics.port: must be between 0 and 65535" in done.stderr
