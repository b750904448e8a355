"""The process ``bench.rss`` measures: replay Binance recordings through feeds, print memory.

Run as ``python -m bench._rss_child '<json spec>'`` in a fresh interpreter. The
spec is ``{"streams": [{"market": "spot", "paths": [...]}, ...], "limit": N|null,
"load": bool}``. With ``load`` false the files are streamed (``open_frames``
merged by ``merge_frames``); with ``load`` true every frame is read into a list
first, as ``bench.e2e`` does, for contrast. Prints one JSON object.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _status_kib(field: str) -> int:
    """Return a ``VmHWM``/``VmRSS`` line of /proc/self/status in KiB (0 where unavailable)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _maxrss_kib() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return maxrss // 1024 if sys.platform == "darwin" else maxrss


def main() -> int:
    """Replay what the spec names and print the memory figures."""
    spec = json.loads(sys.argv[1])
    import itertools
    from collections.abc import Iterator

    from kernel.adapters.base import RawFrame
    from kernel.adapters.binance import BinanceFeed
    from kernel.bus import Bus
    from kernel.recording import merge_frames, open_frames

    baseline = {"ru_maxrss_kib": _maxrss_kib(), "vm_hwm_kib": _status_kib("VmHWM")}
    started = time.perf_counter()
    bus = Bus()
    received = [0]

    def count(_message: object) -> None:
        received[0] += 1

    bus.subscribe("data.>", count)
    feeds = {
        market: BinanceFeed(bus, market, verify=True)
        for market in {stream["market"] for stream in spec["streams"]}
    }
    handler_by_source = {}
    sources: list[Iterator[RawFrame]] = []
    for stream in spec["streams"]:
        on_frame = feeds[stream["market"]].on_frame
        paths = stream["paths"]
        for path in paths:
            handler_by_source[path] = on_frame
        frames: Iterator[RawFrame] = itertools.chain.from_iterable(
            open_frames(path) for path in paths
        )
        if spec["limit"] is not None:
            frames = itertools.islice(frames, spec["limit"])
        sources.append(frames)
    merged: Iterator[RawFrame] = merge_frames(*sources)
    if spec["load"]:
        merged = iter(list(merged))
    frame_count = 0
    for frame in merged:
        handler_by_source[frame.source](frame)
        frame_count += 1
    seconds = time.perf_counter() - started
    level_updates = sum(feed.stats.level_updates for feed in feeds.values())
    peak = {"ru_maxrss_kib": _maxrss_kib(), "vm_hwm_kib": _status_kib("VmHWM")}
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": peak,
                "frames": frame_count,
                "level_updates": level_updates,
                "bus_messages": received[0],
                "seconds": seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
