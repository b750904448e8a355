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
    risk_pb2,
    risk_pb2_grpc,
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
