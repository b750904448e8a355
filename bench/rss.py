"""``rss``: peak resident memory of a fresh process replaying every Binance recording.

A fresh interpreter (``python -m bench._rss_child``) imports the feed, streams
all recorded files (``open_frames`` merged by ``merge_frames``, never all in
memory) through one ``BinanceFeed`` per market on one bus, and reports
``getrusage(RUSAGE_SELF).ru_maxrss`` after the imports (the baseline) and at the
end (the peak). Peers in the same run: a bare interpreter that imports nothing,
and the same replay with every frame loaded into a list first (what ``e2e``
does). ``VmHWM`` from /proc is reported beside ``ru_maxrss`` as a cross-check:
on Linux a child's ``ru_maxrss`` also counts its parent's memory at spawn time,
which is why this benchmark runs before the others load any data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import Context, fmt_int, median, note, table

NAME = "rss"

_GOAL_MIB = 300
_KIB_PER_MIB = 1024
_ROOT = Path(__file__).resolve().parent.parent
_BARE = (
    "import resource, sys; r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
    "print(r // 1024 if sys.platform == 'darwin' else r)"
)


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench._rss_child", json.dumps(spec)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the replay process failed:\n{completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _bare() -> int:
    completed = subprocess.run(
        [sys.executable, "-c", _BARE], capture_output=True, text=True, check=True
    )
    return int(completed.stdout.strip())


def _mib(kib: float) -> float:
    return kib / _KIB_PER_MIB


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    streams = [
        {"market": market, "paths": [str(path) for path in paths]}
        for market, files in ctx.data.markets().items()
        for paths in files.values()
    ]
    files = sum(len(stream["paths"]) for stream in streams)
    print(f"\n[rss] replaying {files} files in a fresh process, {ctx.runs} runs")
    spec = {"streams": streams, "limit": ctx.line_limit}
    samples: dict[str, list[dict[str, Any]]] = {"streamed": [], "loaded": []}
    bare: list[int] = []
    for _ in range(ctx.runs):
        bare.append(_bare())
        samples["streamed"].append(_child({**spec, "load": False}))
        samples["loaded"].append(_child({**spec, "load": True}))

    def med(kind: str, stage: str, field: str) -> float:
        return median([sample[stage][field] for sample in samples[kind]])

    bare_kib = median(bare)
    figures: dict[str, Any] = {"bare_interpreter_mib": _mib(bare_kib)}
    rows = [["bare python (no imports)", f"{_mib(bare_kib):.1f}", "", "", "", ""]]
    for kind in ("streamed", "loaded"):
        base = med(kind, "baseline", "ru_maxrss_kib")
        peak = med(kind, "peak", "ru_maxrss_kib")
        hwm = med(kind, "peak", "vm_hwm_kib")
        first = samples[kind][0]
        figures[kind] = {
            "baseline_mib": _mib(base),
            "peak_mib": _mib(peak),
            "peak_vm_hwm_mib": _mib(hwm),
            "growth_mib": _mib(peak - base),
            "peak_over_baseline": peak / base,
            "frames": first["frames"],
            "level_updates": first["level_updates"],
            "bus_messages": first["bus_messages"],
            "replay_s": median([sample["seconds"] for sample in samples[kind]]),
            "runs": samples[kind],
        }
        label = (
            "replay, streamed (open_frames)" if kind == "streamed" else "replay, all loaded first"
        )
        rows.append(
            [
                label,
                f"{_mib(base):.1f}",
                f"{_mib(peak):.1f}",
                f"{_mib(hwm):.1f}" if hwm else "-",
                f"{_mib(peak - base):.1f}",
                f"{peak / base:.2f}x",
            ]
        )
    table(
        f"rss: peak memory replaying {fmt_int(figures['streamed']['frames'])} frames "
        f"(MiB, median of {ctx.runs} fresh processes)",
        ["process", "after imports", "peak ru_maxrss", "peak VmHWM", "growth", "peak/imports"],
        rows,
    )
    streamed = figures["streamed"]
    met = streamed["peak_mib"] <= _GOAL_MIB
    if streamed["peak_vm_hwm_mib"] and streamed["peak_mib"] > 1.05 * streamed["peak_vm_hwm_mib"]:
        note("ru_maxrss exceeds VmHWM: it includes the parent's memory at spawn; trust VmHWM")
    print(
        f"  streamed replay peak {streamed['peak_mib']:.1f} MiB "
        f"(goal <= {_GOAL_MIB} MB: {'met' if met else 'MISSED'}); "
        f"loading every frame first peaks at {figures['loaded']['peak_mib']:.1f} MiB"
    )
    figures["goal_mib"] = _GOAL_MIB
    figures["goal_met"] = met
    return figures
