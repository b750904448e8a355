"""``tradekernel run`` with ``[serving]`` serves a model; a restart serves what was served."""

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

from kernel.journal import Journal
from serving.support import BUNDLED_FILES, write_book_version
from tradekernel_sdk.proto.tradekernel.v1 import models_pb2, models_pb2_grpc

TOKEN = "serving-admin-token"
METADATA = (("authorization", f"Bearer {TOKEN}"),)


def kernel_config(tmp_path: Path) -> Path:
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


class Kernel:
    """``tradekernel run`` in a subprocess, until SIGTERM."""

    def __init__(self, config: Path) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TRADEKERNEL_API_TOKENS": f"{TOKEN}=read+admin",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log: list[str] = []
        assert self.process.stderr is not None
        port = 0
        deadline = time.monotonic() + 60
        while not port and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            self.log.append(line)
            found = re.search(r"API serving on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else 0
        assert port, "".join(self.log)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.models = models_pb2_grpc.ModelServiceStub(self.channel)

    def stages(self) -> dict[str, int]:
        listed = self.models.ListModels(
            models_pb2.ListModelsRequest(name="direction"), metadata=METADATA, timeout=10
        )
        return {model.version: model.stage for model in listed.models}

    def stop(self) -> str:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        return "".join(self.log) + stderr


def test_the_kernel_serves_a_model_and_a_restart_restores_its_stages(tmp_path: Path) -> None:
    for version in ("1", "2", "3"):
        write_book_version(tmp_path / "models", "direction", version)
    config = kernel_config(tmp_path)
    pb = models_pb2

    first = Kernel(config)
    try:
        assert first.stages()["1"] == pb.MODEL_STAGE_PRODUCTION  # the configured version
        for version in ("2", "3"):
            first.models.LoadModel(
                pb.LoadModelRequest(name="direction", version=version), metadata=METADATA
            )
        first.models.PromoteModel(
            pb.PromoteModelRequest(name="direction", version="2"), metadata=METADATA
        )
        first.models.ShadowModel(
            pb.ShadowModelRequest(name="direction", version="3"), metadata=METADATA
        )
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

    second = Kernel(config)
    try:
        assert second.stages() == {
            "1": pb.MODEL_STAGE_RETIRED,
            "2": pb.MODEL_STAGE_PRODUCTION,
            "3": pb.MODEL_STAGE_SHADOW,
        }
    finally:
        log = second.stop()
    assert "6 journaled changes restored" in log
