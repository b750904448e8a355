"""``tradekernel journal verify`` reports a journal's health in its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kernel.journal import Journal


def _verify(path: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "journal", "verify", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def _write(path: Path, records: int) -> None:
    with Journal.open(path, fsync="never") as journal:
        for index in range(records):
            journal.append("submit", ["s", index])


def test_intact_journal_verifies(tmp_path: Path) -> None:
    path = tmp_path / "journal.tkj"
    _write(path, 25)
    status, report = _verify(path)
    assert status == 0
    assert report["records"] == 25
    assert report["last_sequence"] == 25


def test_torn_tail_is_reported_but_recoverable(tmp_path: Path) -> None:
    path = tmp_path / "journal.tkj"
    _write(path, 25)
    path.write_bytes(path.read_bytes()[:-5])
    status, report = _verify(path)
    assert status == 0
    assert report["records"] == 24
    assert report["torn_tail_bytes"] > 0


def test_damage_before_valid_records_fails(tmp_path: Path) -> None:
    path = tmp_path / "journal.tkj"
    _write(path, 25)
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    status, report = _verify(path)
    assert status == 1
    assert report["error"]
