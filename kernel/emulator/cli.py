"""``tradekernel emulator``: serve one venue's emulator until interrupted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path

from kernel.emulator.server import Emulator, Venue

__all__ = ["serve"]


async def serve(
    venue: Venue,
    files: Sequence[Path],
    *,
    port: int,
    speed: float | None,
    passes: int | None = 1,
) -> int:
    """Serve until SIGINT or SIGTERM; print the URLs first and the counters last."""
    emulator = Emulator(venue, list(files), port=port, speed=speed, passes=passes)
    await emulator.start()
    pace = "as fast as clients read" if speed is None else f"{speed:g}x recorded speed"
    print(f"tradekernel emulator: {venue} on 127.0.0.1:{emulator.port}, replay {pace}", flush=True)
    for name, url in emulator.urls().items():
        print(f"  {name:<17} {url}", flush=True)
    print("  the replay starts with the first market-data subscription; Ctrl-C stops", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
    counters = {name: value for name, value in emulator.stats.as_dict().items() if value}
    served = ", ".join(f"{name} {value:,}" for name, value in counters.items())
    print(f"emulator stopped: {served or 'nothing served'}", flush=True)
    return 0
