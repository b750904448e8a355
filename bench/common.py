"""What the benchmarks share: the data they read, interleaved timing, statistics, tables."""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kernel
from kernel.adapters.base import RawFrame

__all__ = [
    "BUNDLED_DIR",
    "Contender",
    "Context",
    "DataFiles",
    "find_data",
    "fmt_int",
    "fmt_ns",
    "fmt_rate",
    "fmt_ratio",
    "have",
    "interleave",
    "load_frames",
    "median",
    "note",
    "percentile",
    "read_frames",
    "table",
    "version_of",
]

BUNDLED_DIR = Path(kernel.__file__).resolve().parent / "data" / "binance_spot"

# Symbols recorded in ../shared/data; the spot recording spans two files per symbol.
_SYMBOLS = ("btcusdt", "ethusdt")
_SPOT_DAYS = ("20240808", "20240809")
_USDM_DAYS = ("20240808",)


@dataclass(frozen=True)
class DataFiles:
    """The recorded Binance files per market and symbol (upper case), in replay order."""

    source: str  # "shared" or "bundled"
    root: Path
    spot: dict[str, tuple[Path, ...]]
    usdm: dict[str, tuple[Path, ...]]

    def markets(self) -> dict[str, dict[str, tuple[Path, ...]]]:
        """Return the markets that have files, spot first."""
        return {name: files for name, files in (("spot", self.spot), ("usdm", self.usdm)) if files}

    def all_paths(self) -> list[Path]:
        """Return every file, spot first."""
        return [
            path for files in self.markets().values() for paths in files.values() for path in paths
        ]

    def describe(self) -> str:
        """Return one line saying which data is used."""
        count = len(self.all_paths())
        if self.source == "shared":
            return f"shared recordings in {self.root} ({count} Binance files, spot and USD-M)"
        return (
            f"BUNDLED SLICE {self.root} ({count} files, spot only, first 12,000 lines each): "
            "the shared data folder was not found, so figures cover far less data and no USD-M"
        )


def find_data(data_dir: Path | None) -> DataFiles:
    """Return the shared recordings under ``data_dir``, else the slice bundled with the kernel."""
    if data_dir is not None:
        spot_dir = data_dir / "orderbook" / "binance_spot"
        usdm_dir = data_dir / "orderbook" / "binance_usdm"
        spot = {
            symbol.upper(): tuple(spot_dir / f"{symbol}_{day}.gz" for day in _SPOT_DAYS)
            for symbol in _SYMBOLS
        }
        usdm = {
            symbol.upper(): tuple(usdm_dir / f"{symbol}_{day}.gz" for day in _USDM_DAYS)
            for symbol in _SYMBOLS
        }
        wanted = [path for files in (*spot.values(), *usdm.values()) for path in files]
        if all(path.is_file() for path in wanted):
            return DataFiles("shared", data_dir.resolve(), spot, usdm)
    bundled: dict[str, tuple[Path, ...]] = {
        symbol.upper(): (BUNDLED_DIR / f"{symbol}_20240808_head12000.gz",) for symbol in _SYMBOLS
    }
    return DataFiles("bundled", BUNDLED_DIR, bundled, {})


@dataclass
class Context:
    """Options every benchmark reads."""

    data: DataFiles
    runs: int
    quick: bool
    # Frames read per stream (None: all); --quick reads the head of each stream only.
    line_limit: int | None = None
    # Profile the benchmarked path with cProfile where a benchmark supports it (e2e).
    profile: bool = False


def read_frames(paths: Iterable[Path], line_limit: int | None) -> Iterator[RawFrame]:
    """Stream the frames of ``paths`` one file after the other, at most ``line_limit`` in all.

    The files of one stream continue each other, so a limit keeps the head of the stream.
    """
    from kernel.recording import open_frames

    frames = itertools.chain.from_iterable(open_frames(path) for path in paths)
    return frames if line_limit is None else itertools.islice(frames, line_limit)


_FRAME_CACHE: dict[tuple[tuple[Path, ...], int | None], list[RawFrame]] = {}


def load_frames(paths: Sequence[Path], line_limit: int | None) -> list[RawFrame]:
    """Return the frames of ``paths`` in memory (cached: several benchmarks read the same)."""
    key = (tuple(paths), line_limit)
    frames = _FRAME_CACHE.get(key)
    if frames is None:
        frames = list(read_frames(paths, line_limit))
        _FRAME_CACHE[key] = frames
    return frames


def have(module: str) -> bool:
    """Return whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def version_of(distribution: str) -> str | None:
    """Return the installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- timing -------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One thing being timed.

    ``prepare`` does the untimed setup (fresh books, inputs) and returns the
    body; only the body is timed. The body's return value of the last run is
    kept so callers can check that contenders did the same work.
    """

    name: str
    prepare: Callable[[], Callable[[], object]]


@dataclass
class Timings:
    """Seconds per run for each contender, and each body's last return value."""

    seconds: dict[str, list[float]]
    results: dict[str, object]

    def median(self, name: str) -> float:
        """Return the median seconds of one contender."""
        return median(self.seconds[name])


def interleave(contenders: Sequence[Contender], runs: int) -> Timings:
    """Time each contender once per run, run by run, rotating who goes first.

    The garbage collector is collected before and disabled during each timed
    body (as :mod:`timeit` does), so one contender's garbage is not charged to
    the next.
    """
    seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
    results: dict[str, object] = {}
    count = len(contenders)
    for run in range(runs):
        for offset in range(count):
            contender = contenders[(run + offset) % count]
            body = contender.prepare()
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                results[contender.name] = body()
                elapsed = time.perf_counter() - started
            finally:
                gc.enable()
            seconds[contender.name].append(elapsed)
            del body
    return Timings(seconds, results)


def median(values: Sequence[float]) -> float:
    """Return the median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if not ordered:
        raise ValueError("median of nothing")
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile (0 < q <= 100)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# -- output -------------------------------------------------------------------


def fmt_rate(per_second: float) -> str:
    """Return a rate such as ``1.23 M/s``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k/s"
    return f"{per_second:.0f} /s"


def fmt_ns(ns: float) -> str:
    """Return nanoseconds with a sensible unit."""
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def fmt_ratio(ratio: float | None) -> str:
    """Return a ratio such as ``4.20x`` (``-`` when there is none)."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_int(value: int) -> str:
    """Return an integer with thousands separators."""
    return f"{value:,}"


def note(message: str) -> None:
    """Print a remark under a benchmark's table."""
    print(f"  note: {message}")


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  " + "  ".join(parts)

    print()
    print(f"== {title}")
    print(line(list(headers)))
    print("  " + "  ".join("-" * width for width in widths))
    for row in cells:
        print(line(row))
