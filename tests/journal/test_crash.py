"""A writer killed at a random moment loses nothing it acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.journal import Journal, replay

CHILD = Path(__file__).resolve().parent / "_crash_child.py"


def payload_for(sequence: int) -> list[object]:
    """The payload ``_crash_child.py`` writes for ``sequence``."""
    return [sequence, f"order-{sequence}", bytes([sequence % 256]) * 64]


def run_until_killed(
    path: Path, policy: str, batch_records: int, acks_before_kill: int, delay_s: float
) -> list[int]:
    """Start a writer, SIGKILL it after some acknowledgements, return all it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), policy, str(batch_records)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < acks_before_kill:
            line = child.stdout.readline()
            if not line.endswith(b"\n"):
                child.wait(timeout=30)
                raise AssertionError(f"writer ended early: {child.stderr.read()!r}")  # type: ignore[union-attr]
            acknowledged.append(int(line))
        time.sleep(delay_s)
    finally:
        os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    # Lines the writer printed before it died still count; a cut line cannot be an ack.
    acknowledged.extend(int(line) for line in rest.split(b"\n")[:-1])
    assert child.returncode == -signal.SIGKILL
    return acknowledged


@pytest.mark.slow
# A batch of 128 takes longer to fill (a print per record) than to write and fsync,
# so kills land in both phases; with "always" most land between the write and the ack.
@pytest.mark.parametrize(("policy", "rounds", "batch"), [("always", 20, 1), ("batch", 10, 128)])
def test_acknowledged_records_survive_sigkill(
    tmp_path: Path, policy: str, rounds: int, batch: int
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    path = tmp_path / "crash.tkj"
    highest_ack = 0
    for round_ in range(rounds):
        acks = run_until_killed(path, policy, batch, rng.randint(1, 10), rng.uniform(0, 0.01))
        where = f"seed {seed}, round {round_}, acks up to {max(acks)}"
        assert acks == sorted(acks) and acks[0] > highest_ack, where
        highest_ack = acks[-1]

        # A kill can cut a write of several pages short: that leaves a torn tail,
        # which reopening cuts off, but never inside an acknowledged record.
        with Journal.open(path) as journal:
            last = journal.last_sequence
        records = list(replay(path))
        assert [r.sequence for r in records] == list(range(1, last + 1)), where
        assert all(r.payload == payload_for(r.sequence) for r in records), where
        # Everything acknowledged is there; beyond it only what was in flight.
        assert highest_ack <= last <= highest_ack + batch, where
        highest_ack = last
