"""Retraining in the running kernel: a drift alert or an operator puts a new version in shadow.

Real trainings of the tiny network in a child process, a real registry on a
real journal, real drift monitoring of the bundled BTCUSDT replay, and
``tradekernel run`` on loopback gRPC. Production is never changed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import textwrap
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.cli import main
from kernel.features.drift import DriftAlert, DriftConfig
from kernel.journal import Journal
from kernel.models.repository import ModelRepository
from kernel.recording import open_frames
from kernel.serving import ModelRegistry, ServingEngine
from kernel.serving.config import RetrainSettings, parse_serving_config
from kernel.serving.retrain import ModelRetrainer
from models.retraining import BTC, TORCH_MISSING, train_tiny, write_recordings
from serving.running import RunningKernel, kernel_head
from tradekernel_sdk.predictions import Prediction

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason=TORCH_MISSING)

TOKEN = "retrain-admin-token"
# Any shift alerts: PSI above 0 on every streaming column, never KS (at most 1).
EAGER_DRIFT = DriftConfig(
    window=300, evaluate_every=100, min_values=50, psi_threshold=0.0, ks_threshold=1.0
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("retrain-service")
    root = train_tiny(folder)
    newest = write_recordings(folder / "recordings")
    return {"root": root, "recordings": folder / "recordings", "newest": newest}


def fresh_repository(trained: dict[str, Any], tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "tiny").mkdir(parents=True)
    source = trained["root"] / "tiny" / "1"
    (root / "tiny" / "1").mkdir()
    for entry in source.iterdir():
        if entry.is_file():
            (root / "tiny" / "1" / entry.name).write_bytes(entry.read_bytes())
    return root


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def model_records(journal: Path) -> list[tuple[str, Any]]:
    with Journal.open(journal) as opened:
        return [(r.kind, r.payload) for r in opened.records_since(0) if r.kind.startswith("model_")]


def test_a_drift_alert_retrains_into_shadow_once_journaled_and_a_restart_restores_it(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    root = fresh_repository(trained, tmp_path)
    journal_path = tmp_path / "journal.tkj"
    settings = RetrainSettings(
        recordings=trained["recordings"], last=2, min_interval_s=600.0, drift=EAGER_DRIFT
    )
    clock = Clock()

    async def run() -> ModelRetrainer:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal)
            await registry.load("tiny", "1")
            registry.promote("tiny", "1")
            retrainer = ModelRetrainer("tiny", settings, registry, clock=clock)
            bus = Bus()
            feed = create_feed("binance", bus)
            retrainer.start(bus)
            for frame in open_frames(BTC):  # the replay runs on the loop, as the kernel's does
                feed.on_frame(frame)
            assert retrainer.task is not None
            await retrainer.task
            assert registry.route("tiny").production is registry.get("tiny", "1")
            assert registry.route("tiny").shadow is registry.get("tiny", "2")

            # Within min_interval_s an alert starts nothing; after it, one starts again.
            alert = DriftAlert("tiny", "binance", "BTCUSDT", "ofi.ofi", "psi", 0.4, 0.25)
            clock.now += 599.0
            retrainer.on_alert(alert)
            assert retrainer.skipped["interval"] == 1 and retrainer.runs == {"drift": 1}
            clock.now += 1.0
            assert retrainer.request("drift", "test") is not None
            assert retrainer.request("drift", "test again") is None  # never two at once
            await retrainer.stop()  # the one under way is cancelled: nothing stored
            registry.close()
            return retrainer

    retrainer = asyncio.run(run())
    monitor = retrainer.watch.monitor if retrainer.watch is not None else None
    assert monitor is not None
    alerts = sum(monitor.alerts.values())
    assert alerts >= 2  # several columns crossed during one replay: one run, the rest refused
    assert retrainer.runs == {"drift": 2}
    assert retrainer.skipped == {"running": alerts - 1 + 1, "interval": 1}
    assert (retrainer.shadowed, retrainer.failures) == (1, 0)
    assert ModelRepository(root).versions("tiny") == [1, 2]

    sha = ModelRepository(root).open("tiny:2").metadata["model_sha256"]
    records = model_records(journal_path)
    assert records[2:] == [("model_load", ["tiny", "2", "", sha]), ("model_shadow", ["tiny", "2"])]
    assert [kind for kind, _ in records[:2]] == ["model_load", "model_promote"]

    async def restart() -> tuple[str, str]:
        registry = ModelRegistry(root)
        await registry.restore(records)
        route = registry.route("tiny")
        registry.close()
        assert route.production is not None and route.shadow is not None
        return route.production.version, route.shadow.version

    assert asyncio.run(restart()) == ("1", "2")


def test_a_failing_retraining_leaves_production_serving_counts_it_and_says_why(
    trained: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = fresh_repository(trained, tmp_path)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "broken.tkr").write_bytes(b"\x00\x01 not a recording\n" * 64)
    journal_path = tmp_path / "journal.tkj"
    settings = RetrainSettings(recordings=recordings, min_interval_s=0.0, every_s=0.0)

    async def run() -> tuple[ModelRetrainer, list[Prediction]]:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal)
            await registry.load("tiny", "1")
            registry.promote("tiny", "1")
            retrainer = ModelRetrainer("tiny", settings, registry)
            task = retrainer.request("request", "unreadable data")
            assert task is not None
            await task
            assert "unrecognized capture format" in retrainer.last_error
            # A capture of another venue reads, but training finds no book in it.
            (recordings / "broken.tkr").unlink()
            okx = BTC.parents[1] / "okx_v5" / "OKX.ws.1.0.gz"
            (recordings / "okx.gz").write_bytes(okx.read_bytes())
            task = retrainer.request("request", "data without the model's book")
            assert task is not None
            await task
            assert "no binance book for BTCUSDT" in retrainer.last_error

            # Production answers as before.
            bus = Bus()
            feed = create_feed("binance", bus)
            engine = ServingEngine(bus, registry, "tiny", batching=False)
            engine.start()
            answers: list[Prediction] = []
            bus.subscribe("model.prediction.binance.BTCUSDT", answers.append)
            for frame in list(open_frames(BTC))[:3000]:
                feed.on_frame(frame)
            engine.stop()
            registry.close()
            return retrainer, answers

    with caplog.at_level(logging.ERROR, logger="kernel.serving.retrain"):
        retrainer, answers = asyncio.run(run())
    assert retrainer.failures == 2 and retrainer.shadowed == 0
    assert retrainer.runs == {"request": 2}
    failed = [r.getMessage() for r in caplog.records if "retraining failed" in r.getMessage()]
    assert len(failed) == 2
    assert "production 1 keeps serving" in failed[0] and "unrecognized capture format" in failed[0]
    assert answers and {answer.version for answer in answers} == {"1"}
    assert ModelRepository(root).versions("tiny") == [1]
    assert [kind for kind, _ in model_records(journal_path)] == ["model_load", "model_promote"]
    families = {family.name: family for family in retrainer.families()}
    assert [s.value for s in families["tradekernel_model_retrain_failures"].samples] == [2.0]
    assert [s.value for s in families["tradekernel_model_retrain_shadowed"].samples] == [0.0]


def training_processes() -> list[int]:
    """The processes running a retraining's configuration (a ``tradekernel-retrain-*`` file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            if b"tradekernel-retrain-" in command:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc (Linux)")
def test_a_training_past_its_time_limit_is_stopped_and_production_keeps_serving(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    root = fresh_repository(trained, tmp_path)
    settings = RetrainSettings(recordings=trained["recordings"], last=2, timeout_s=0.5)

    async def run() -> ModelRetrainer:
        registry = ModelRegistry(root)
        await registry.load("tiny", "1")
        registry.promote("tiny", "1")
        retrainer = ModelRetrainer("tiny", settings, registry)
        task = retrainer.request("request", "a training that takes seconds")
        assert task is not None
        await task
        assert registry.route("tiny").production is registry.get("tiny", "1")
        registry.close()
        return retrainer

    retrainer = asyncio.run(run())
    assert "did not finish within 0.5 s and was stopped" in retrainer.last_error
    assert (retrainer.failures, retrainer.shadowed) == (1, 0)
    assert training_processes() == []  # killed, not left to store a version later
    assert ModelRepository(root).versions("tiny") == [1]


def test_the_timer_starts_retrainings_within_min_interval_s(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    root = fresh_repository(trained, tmp_path)
    settings = RetrainSettings(
        recordings=tmp_path / "not-yet", on_drift=False, every_s=0.01, min_interval_s=5.0
    )
    clock = Clock()

    async def run() -> ModelRetrainer:
        registry = ModelRegistry(root)
        await registry.load("tiny", "1")
        registry.promote("tiny", "1")
        retrainer = ModelRetrainer("tiny", settings, registry, clock=clock)
        retrainer.start()
        while retrainer.skipped["interval"] < 3:  # ticks inside the interval start nothing
            await asyncio.sleep(0.01)
        clock.now += 5.0
        while retrainer.runs.get("timer", 0) < 2:
            await asyncio.sleep(0.01)
        assert retrainer.task is not None
        await retrainer.task  # the clock stands still: no third start
        await retrainer.stop()
        registry.close()
        return retrainer

    retrainer = asyncio.run(run())
    assert retrainer.runs == {"timer": 2} and retrainer.watch is None
    assert retrainer.failures == 2 and "no such recording folder" in retrainer.last_error


def test_the_retrain_table_is_checked_field_by_field(tmp_path: Path) -> None:
    def parse(retrain: dict[str, Any]) -> Any:
        raw = {"enabled": True, "models": [{"name": "tiny", "retrain": retrain}]}
        return parse_serving_config(raw, tmp_path).models[0].retrain

    settings = parse({"recordings": "rec", "last": 3, "drift": {"psi_threshold": 0.1}})
    assert settings == RetrainSettings(
        recordings=tmp_path / "rec", last=3, drift=DriftConfig(psi_threshold=0.1)
    )
    assert parse_serving_config({"models": [{"name": "tiny"}]}, tmp_path).models[0].retrain is None
    for retrain, message in (
        ({}, r"retrain\.recordings: required"),
        ({"recordings": "r", "last": 0}, r"retrain\.last: an integer from 1"),
        ({"recordings": "r", "min_interval_s": -1}, r"retrain\.min_interval_s: seconds"),
        ({"recordings": "r", "timeout_s": "1h"}, r"retrain\.timeout_s: seconds"),
        ({"recordings": "r", "on_drift": False}, "nothing would start it"),
        ({"recordings": "r", "drift": {"psi": 1}}, r"retrain\.drift: .*unknown field `psi`"),
        ({"recordings": "r", "every": 60}, r"retrain\.every: unknown field"),
    ):
        with pytest.raises(ValueError, match=message):
            parse(retrain)


# ---------------------------------------------------------------------------
# tradekernel run


def kernel_config(tmp_path: Path, root: Path, retrain: str = "") -> Path:
    config = tmp_path / "kernel.toml"
    config.write_text(
        kernel_head(tmp_path)
        + textwrap.dedent(f"""
        [[replay]]
        venue = "binance"
        files = ["{BTC}"]

        [serving]
        enabled = true
        repository = "{root}"

        [[serving.models]]
        name = "tiny"
        instruments = ["binance.BTCUSDT"]
        version = "1"

        # Trading, whose journal the registry writes to, acting on production's predictions.
        [strategies.model_btc]
        strategy = "model_signal"
        venue = "binance"
        symbol = "BTCUSDT"
        tick = 1_000_000
        lot = 1_000
        quantity = 100_000
        max_position = 300_000
        allow_short = true
        model = "tiny"
        min_confidence_bps = 5_000
        """)
        + retrain
    )
    return config


PRODUCTION, SHADOW = "production", "shadow"


def test_models_retrain_with_api_puts_the_new_version_in_shadow_and_a_restart_keeps_it(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fresh_repository(trained, tmp_path)
    config = kernel_config(tmp_path, root)
    monkeypatch.setenv("TRADEKERNEL_API_TOKEN", TOKEN)
    first = RunningKernel(config, TOKEN, model="tiny")
    try:
        assert first.stages() == {"1": PRODUCTION}
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = main(
                [
                    "models",
                    "retrain",
                    "--model",
                    "tiny",  # the kernel's production version
                    "--recordings",
                    str(trained["recordings"]),
                    "--last",
                    "2",
                    "--repository",
                    str(root),
                    "--api",
                    f"127.0.0.1:{first.port}",
                ]
            )
        assert status == 0, err.getvalue()
        lines = out.getvalue().splitlines()
        assert lines[0] == f"tiny:2 {(root / 'tiny' / '2').resolve()}"
        assert lines[-2:] == [
            f"loaded tiny:2 into the kernel at 127.0.0.1:{first.port}",
            "shadow tiny:2 beside production 1; not promoted",
        ]
        assert first.stages() == {"1": PRODUCTION, "2": SHADOW}
    finally:
        first.stop(timeout_s=120)
    kinds = [kind for kind, _ in model_records(tmp_path / "state" / "journal.tkj")]
    assert kinds == ["model_load", "model_promote", "model_load", "model_shadow"]

    second = RunningKernel(config, TOKEN, model="tiny")
    try:
        assert second.stages() == {"1": PRODUCTION, "2": SHADOW}
    finally:
        log = second.stop(timeout_s=120)
    assert "4 journaled changes restored" in log


def test_the_kernel_retrains_on_drift_into_shadow_and_production_keeps_serving(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    root = fresh_repository(trained, tmp_path)
    retrain = textwrap.dedent(f"""
        [serving.models.retrain]
        recordings = "{trained["recordings"]}"
        last = 2
        min_interval_s = 3600
        drift = {{ window = 300, evaluate_every = 100, min_values = 50, psi_threshold = 0.0, ks_threshold = 1.0 }}
        """)  # noqa: E501
    kernel = RunningKernel(kernel_config(tmp_path, root, retrain), TOKEN, model="tiny")
    try:
        deadline = time.monotonic() + 180
        while kernel.stages().get("2") != SHADOW and time.monotonic() < deadline:
            time.sleep(0.5)
        assert kernel.stages() == {"1": PRODUCTION, "2": SHADOW}
    finally:
        log = kernel.stop(timeout_s=120)
    assert "model tiny: retraining (" in log and "feature drift (model tiny)" in log
    assert "model tiny: retrained version 2 (as 1, on 2 file(s)" in log
    assert "is in shadow beside production 1" in log
    assert log.count("model tiny: retraining (") == 1  # one run for the replay's alerts
    kinds = [kind for kind, _ in model_records(tmp_path / "state" / "journal.tkj")]
    assert kinds == ["model_load", "model_promote", "model_load", "model_shadow"]
    assert ModelRepository(root).versions("tiny") == [1, 2]
