"""``tradekernel replay`` checks every oracle in a recording and says so in its exit status."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRED_KEYS = {
    "frames",
    "book_updates",
    "level_updates",
    "resyncs",
    "gaps",
    "oracle_checks",
    "oracle_mismatches",
    "crossed_books",
    "malformed_frames",
    "seconds",
}


def _replay(*args: str) -> tuple[int, dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "replay", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def test_bundled_spot_replay_verifies(bundled_data: Path) -> None:
    spot = bundled_data / "binance_spot"
    status, report, _ = _replay(
        str(spot / "btcusdt_20240808_head12000.gz"),
        str(spot / "ethusdt_20240808_head12000.gz"),
        "--venue",
        "binance",
        "--verify",
    )
    assert status == 0
    assert report.keys() >= REQUIRED_KEYS
    assert report["frames"] == 24_000
    assert report["gaps"] == 0
    assert report["oracle_mismatches"] == 0
    assert report["oracle_checks"] > 300
    assert report["malformed_frames"] == 0


def test_bundled_okx_replay_verifies_every_checksum(bundled_data: Path) -> None:
    okx = bundled_data / "okx_v5"
    status, report, stderr = _replay(
        str(okx / "OKX.0.gz"), str(okx / "OKX.ws.1.0.gz"), "--venue", "okx", "--verify"
    )
    assert status == 0
    assert report["checksum_checks"] == 290
    assert report["checksum_failures"] == 0
    assert "not in the instrument catalog" not in stderr


def _rewrite(
    source: Path, target: Path, drop_diff: int | None = None, garbage_after: int | None = None
) -> None:
    diffs = 0
    with gzip.open(source, "rb") as reader, gzip.open(target, "wb") as writer:
        for index, line in enumerate(reader):
            if b"depthUpdate" in line:
                diffs += 1
                if diffs == drop_diff:
                    continue
            writer.write(line)
            if index == garbage_after:
                writer.write(b'1723161260000000000 {"stream":"btcusdt@dep\n')
                writer.write(b"not even a timestamp\n")


def test_a_dropped_diff_fails_verification(bundled_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "dropped.gz"
    _rewrite(bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz", broken, drop_diff=300)
    status, report, stderr = _replay(str(broken), "--venue", "binance", "--verify")
    assert status == 1
    assert report["gaps"] == 1
    assert "book invalid (gap" in stderr


def test_malformed_lines_are_counted_and_replay_continues(
    bundled_data: Path, tmp_path: Path
) -> None:
    noisy = tmp_path / "noisy.gz"
    _rewrite(
        bundled_data / "binance_spot" / "btcusdt_20240808_head12000.gz", noisy, garbage_after=5000
    )
    status, report, stderr = _replay(str(noisy), "--venue", "binance", "--verify")
    assert status == 0
    assert report["malformed_frames"] == 2
    assert report["frames"] == 12_001
    assert "malformed" in stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "replay", str(tmp_path / "nope.gz"), "--venue", "okx"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no such file" in done.stderr


@pytest.mark.shared_data
def test_shared_okx_capture_verifies_every_checksum(shared_data: Path) -> None:
    okx = shared_data / "orderbook" / "okx_v5"
    status, report, _ = _replay(
        str(okx / "OKX.0.gz"), str(okx / "OKX.ws.1.0.gz"), "--venue", "okx", "--verify"
    )
    assert status == 0
    assert report["checksum_checks"] == 290


def test_converted_recording_replays_exactly_like_its_source(
    bundled_data: Path, tmp_path: Path
) -> None:
    spot = bundled_data / "binance_spot"
    sources = [
        str(spot / "btcusdt_20240808_head12000.gz"),
        str(spot / "ethusdt_20240808_head12000.gz"),
    ]
    recording = tmp_path / "spot.tkr"
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "convert", *sources, "--out", str(recording)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 24,000 frames" in done.stdout
    _, original, _ = _replay(*sources, "--venue", "binance", "--verify")
    status, replayed, _ = _replay(str(recording), "--venue", "binance", "--verify")
    assert status == 0
    for key in REQUIRED_KEYS - {"seconds"}:
        assert replayed[key] == original[key], key
    assert replayed["books"] == original["books"]
