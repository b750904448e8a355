"""A loopback exchange emulator: real wire formats, replayed real data, scripted faults.

``Emulator("binance", [recording, ...])`` serves Binance spot (REST, combined and
raw streams, signed orders, listen key and user-data stream);
``Emulator("binance-usdm", [...])`` serves USD-M futures market data;
``Emulator("okx", [...])`` serves the OKX v5 public websocket and signed order
endpoints. Orders match against the replayed book through the paper venue.
Faults are scripted through ``emulator.faults`` and counted in
``emulator.stats``. See ``docs/emulator.md``.
"""

from kernel.emulator.faults import STAT_NAMES, EmulatorStats, FaultPlan
from kernel.emulator.server import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_PASSPHRASE,
    VENUES,
    Emulator,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_PASSPHRASE",
    "STAT_NAMES",
    "VENUES",
    "Emulator",
    "EmulatorStats",
    "FaultPlan",
]
