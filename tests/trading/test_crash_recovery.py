"""A trading kernel killed with SIGKILL at random points loses and duplicates nothing.

A real ``tradekernel run`` process trades the bundled data (paced replay, the
first-party strategies, the paper venue) with its journal and the venue's log
in one state folder, and is killed again and again. After every kill the
folder is checked the way a restart uses it: the journal verifies, every
order was submitted once, the venue knows no order the journal does not, and
once reconciled the positions equal what the venue's own fills add up to.
A last run then goes to the end on the same folder.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.bus import Bus
from kernel.journal import Journal, replay, verify
from kernel.orders import OrderManager
from kernel.paper import PaperVenue
from tradekernel_sdk import codec
from tradekernel_sdk.orders import OrderRequest, OrderSide

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"
KILLS = 30

CONFIG = f"""
[kernel]
state_dir = "state"

[metrics]
enabled = false

[[replay]]
venue = "binance"
files = ["{DATA}"]
speed = 40

[paper]
latency_ms = 5.0

[strategies.imbalance_btc]
strategy = "imbalance"
venue = "binance"
symbol = "BTCUSDT"
tick = 1_000_000
lot = 1_000
quantity = 100_000
max_position = 500_000
threshold_bps = 5000
cooldown_ns = 500_000_000

[strategies.market_maker_btc]
strategy = "avellaneda_stoikov"
venue = "binance"
symbol = "BTCUSDT"
tick = 1_000_000
lot = 1_000
quantity = 100_000
max_inventory = 400_000
"""


class _Unused:
    """The order manager needs a risk gate; recovery and reconciliation never call it."""

    def check(self, request: OrderRequest) -> Any:
        raise AssertionError("no order is checked while reconciling")


def _check_state(state: Path, scratch: Path) -> dict[str, int]:
    """Check a state folder as a restart would use it, on a copy; return reconcile figures."""
    journal_path = state / "journal.tkj"
    venue_path = state / "paper-venue.tkj"
    if not journal_path.exists():
        return {}
    report = verify(journal_path)
    assert report.ok, report.error
    assert verify(venue_path).ok if venue_path.exists() else True

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    shutil.copy(journal_path, scratch / "journal.tkj")
    records = list(replay(scratch / "journal.tkj"))
    submits = Counter(
        codec.decode(record.payload[1]).client_order_id
        for record in records
        if record.kind in ("submit", "deny")
    )
    assert not [order_id for order_id, count in submits.items() if count > 1], "duplicated order"

    venue_records = list(replay(venue_path)) if venue_path.exists() else []
    accepted = Counter(
        codec.decode(record.payload[0]).client_order_id
        for record in venue_records
        if record.kind == "order"
    )
    assert not [order_id for order_id, count in accepted.items() if count > 1]

    instruments = KNOWN_INSTRUMENTS["binance"]
    bus = Bus()
    with Journal.open(scratch / "journal.tkj", fsync="never") as journal:
        orders = OrderManager(
            bus,
            journal=journal,
            risk=_Unused(),
            instruments=lambda venue, symbol: instruments.get(symbol),
            clock=time.time_ns,
        )
        orders.recover((record.kind, record.payload) for record in records)
        venue = PaperVenue(bus, instruments=instruments, register_endpoints=False)
        venue_orders = venue.recover((record.kind, record.payload) for record in venue_records)
        result = orders.reconcile("paper", venue_orders)
        assert result["unknown_at_kernel"] == 0, "the venue knows an order the journal lost"

        sides = {
            codec.decode(record.payload[0]).client_order_id: codec.decode(record.payload[0]).side
            for record in venue_records
            if record.kind == "order"
        }
        venue_position = sum(
            fill.quantity if sides[order_id] is OrderSide.BUY else -fill.quantity
            for order_id, record in venue_orders.items()
            for fill in record.fills
        )
        assert orders.portfolio.quantity("paper", "BTCUSDT") == venue_position
        for order_id, record in venue_orders.items():
            assert orders.orders[order_id].filled_quantity == record.filled_quantity
    return result


@pytest.mark.slow
def test_kernel_killed_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(CONFIG)
    state = tmp_path / "state"
    command = [
        sys.executable,
        "-m",
        "kernel",
        "--log-level",
        "WARNING",
        "run",
        "--config",
        str(config),
        "--no-progress",
        "--json",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    chance = random.Random(20240808)
    reconciled: Counter[str] = Counter()
    for kill in range(KILLS):
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        time.sleep(chance.uniform(0.4, 2.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"kill {kill}: it exited by itself"
        reconciled.update(_check_state(state, tmp_path / f"check-{kill}"))

    final = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert final.returncode == 0, final.stderr[-2000:]
    summary = json.loads(final.stdout.strip().splitlines()[-1])
    trading = summary["trading"]
    assert trading["recovered_records"] > 0
    assert trading["reconciled"]["paper"]["unknown_at_kernel"] == 0
    _check_state(state, tmp_path / "check-final")
    journal = verify(state / "journal.tkj")
    assert journal.ok and journal.records > 100
    # The kills landed while orders were in flight often enough to exercise recovery.
    print(f"reconciled over {KILLS} kills: {dict(reconciled)}; journal records {journal.records}")
    assert sum(reconciled.values()) > 0, reconciled
