"""``tradekernel run`` with ``[api]`` serves the gRPC API while it trades, until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    plugins_pb2,
    plugins_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    types_pb2,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"


def test_api_is_served_from_the_running_kernel(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [kernel]
        exit_when_replay_done = false

        [metrics]
        enabled = false

        [api]
        enabled = true
        port = 0

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
    """)
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRADEKERNEL_API_TOKENS": "s3cret=read+trade"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        port = 0
        deadline = time.monotonic() + 60
        while not port and time.monotonic() < deadline:
            found = re.search(r"API serving on 127\.0\.0\.1:(\d+)", process.stderr.readline())
            port = int(found.group(1)) if found else 0
        assert port, "the kernel never said where the API listens"
        metadata = (("authorization", "Bearer s3cret"),)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            version = kernel_pb2_grpc.KernelServiceStub(channel).GetVersion(
                kernel_pb2.GetVersionRequest(), metadata=metadata, timeout=10
            )
            assert version.kernel_version
            risk = risk_pb2_grpc.RiskServiceStub(channel)
            risk.Halt(risk_pb2.HaltRequest(reason="from the test"), metadata=metadata, timeout=10)
            state = risk.GetRiskState(risk_pb2.GetRiskStateRequest(), metadata=metadata, timeout=10)
            assert state.state.state == risk_pb2.TRADING_STATE_HALTED
            with pytest.raises(grpc.RpcError) as refused:
                risk.GetRiskState(risk_pb2.GetRiskStateRequest(), timeout=10)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    assert "s3cret" not in stderr
    assert "stopped because   SIGTERM" in stdout


def _start_kernel(config: Path, tokens: str) -> tuple[subprocess.Popen[str], int]:
    """Start ``tradekernel run`` and return it with the port its API says it serves on."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRADEKERNEL_API_TOKENS": tokens}
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"API serving on 127\.0\.0\.1:(\d+)", process.stderr.readline())
        if found:
            return process, int(found.group(1))
    process.kill()
    raise AssertionError("the kernel never said where the API listens")


def _stop_kernel(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    return stdout


def test_limits_and_plugin_switches_survive_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [kernel]
        exit_when_replay_done = false
        state_dir = "{tmp_path / "state"}"

        [metrics]
        enabled = false

        [api]
        enabled = true
        port = 0

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
    """)
    )
    metadata = (("authorization", "Bearer ops-0b5e"),)
    cap = risk_pb2.RiskLimits(
        defaults=risk_pb2.InstrumentLimits(max_order_notional=types_pb2.Amount(value="25")),
        self_trade_prevention=True,
    )
    process, port = _start_kernel(config, "ops-0b5e=read+trade+admin")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            risk = risk_pb2_grpc.RiskServiceStub(channel)
            answer = risk.UpdateLimits(
                risk_pb2.UpdateLimitsRequest(limits=cap, expected_revision=1, reason="cap"),
                metadata=metadata,
                timeout=10,
            )
            assert answer.revision == 2
            plugins = plugins_pb2_grpc.PluginServiceStub(channel)
            plugins.DisablePlugin(
                plugins_pb2.DisablePluginRequest(name="strategies"), metadata=metadata, timeout=10
            )
        stdout = _stop_kernel(process)
    finally:
        process.kill()
    assert "imbalance_btc" in stdout

    process, port = _start_kernel(config, "ops-0b5e=read+trade+admin")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            limits = risk_pb2_grpc.RiskServiceStub(channel).GetLimits(
                risk_pb2.GetLimitsRequest(), metadata=metadata, timeout=10
            )
            assert limits.revision == 2
            assert limits.limits.defaults.max_order_notional.value == "25.00000000"
            listed = plugins_pb2_grpc.PluginServiceStub(channel).ListPlugins(
                plugins_pb2.ListPluginsRequest(), metadata=metadata, timeout=10
            )
            (strategies,) = [p for p in listed.plugins if p.name == "strategies"]
            assert strategies.status == plugins_pb2.PLUGIN_STATUS_DISABLED
            assert "restored after a restart" in strategies.reason
        _stop_kernel(process)
    finally:
        process.kill()


def test_api_calls_are_exported_to_prometheus() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from kernel.api.interceptors import ApiMetrics
    from kernel.metrics import KernelCollector

    metrics = ApiMetrics()
    metrics.observe("/tradekernel.v1.RiskService/Halt", "OK", 120_000)
    metrics.observe("/tradekernel.v1.RiskService/Halt", "PERMISSION_DENIED", 80_000)
    collector = KernelCollector()
    collector.add_source(metrics.families)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert (
        'tradekernel_api_calls_total{code="PERMISSION_DENIED",'
        'method="/tradekernel.v1.RiskService/Halt"} 1.0'
    ) in text
    assert (
        'tradekernel_api_call_seconds_count{method="/tradekernel.v1.RiskService/Halt"} 2.0' in text
    )
