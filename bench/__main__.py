"""Run the benchmarks: ``python -m bench --data ../shared/data --out bench/results.json``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Context, find_data, version_of

# In the order of the report. ``rss`` runs first: a child process's ru_maxrss
# also counts the parent's memory at the time it is spawned, so it is measured
# while this process is still small.
BENCHMARKS = (
    "book",
    "e2e",
    "rss",
    "bus",
    "fixedpoint",
    "journal",
    "tick_to_order",
    "remote",
    "api_stream",
    "features",
    "inference",
)
_RUN_FIRST = ("rss",)
_QUICK_RUNS = 2
_QUICK_LINES = 15_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of tradekernel against ccxt, NautilusTrader and the stdlib.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="the shared data folder (default ../shared/data); when it is missing the "
        "bundled slice in kernel/data is used and the output says so",
    )
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    parser.add_argument(
        "--runs",
        type=int,
        help=f"timed runs per contender, interleaved (default 5; {_QUICK_RUNS} with --quick)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help="run only these benchmarks"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: the first {_QUICK_LINES:,} frames of each stream, fewer runs",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the e2e path with cProfile and print its top functions",
    )
    return parser


def _meta(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": {
            name: version_of(name) for name in ("tradekernel", "ccxt", "nautilus_trader", "orjson")
        },
        "data": {
            "source": ctx.data.source,
            "root": str(ctx.data.root),
            "files": [str(path) for path in ctx.data.all_paths()],
            "description": ctx.data.describe(),
        },
        "runs": ctx.runs,
        "quick": ctx.quick,
        "frame_limit_per_stream": ctx.line_limit,
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the benchmarks, print and write their figures."""
    args = _parser().parse_args(argv)
    runs = args.runs if args.runs is not None else (_QUICK_RUNS if args.quick else 5)
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    data = find_data(args.data)
    ctx = Context(data, runs, args.quick, _QUICK_LINES if args.quick else None, args.profile)
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]
    order = [name for name in _RUN_FIRST if name in selected]
    order += [name for name in selected if name not in order]

    print(f"tradekernel benchmarks: {', '.join(selected)}; {runs} runs each")
    print(f"data: {data.describe()}")
    if data.source != "shared":
        print(f"WARNING: {args.data} not found (or incomplete); using the bundled slice")
    if args.quick:
        print(f"QUICK smoke run: first {_QUICK_LINES:,} frames per stream; figures are indicative")

    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in order:
        module = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        results[name] = module.run(ctx)
        results[name]["wall_s"] = round(time.perf_counter() - t0, 2)
    total = time.perf_counter() - started
    print(f"\nall done in {total:.1f} s")

    if args.out is not None:
        document = {
            "meta": {**_meta(ctx, args), "wall_s": round(total, 1)},
            "benchmarks": {name: results[name] for name in selected},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
