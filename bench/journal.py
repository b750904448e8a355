"""``journal``: appending commands and events to the journal, against SQLite as the peer.

Every contender stores the same records, in the same order: a sequence, a
nanosecond timestamp, a kind and a ~150-byte payload (order events encoded with
``tradekernel_sdk.codec``), one call per record, in a fresh file in a
temporary directory. Timed: the appends and the final close (which syncs what
is pending), not the file's creation. Contenders:

* the journal with ``fsync="batch"`` (256 records or 5 ms per write + fsync),
  ``"never"`` (one write per record, no fsync) and ``"always"`` (write + fsync
  per record);
* SQLite (stdlib ``sqlite3``) in WAL mode, one ``INSERT`` per record:
  ``synchronous=NORMAL`` committing every 256 records (commits do not fsync in
  WAL mode: survives a process crash, not a power loss), ``synchronous=FULL``
  committing every 256 records (fsync per commit: the guarantee of the
  journal's batch policy) and ``synchronous=FULL`` committing every record (the
  guarantee of ``fsync="always"``).

The per-record policies run on fewer records: each costs an fsync. Per-append
latency comes from one extra instrumented run per contender.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Contender,
    Context,
    fmt_int,
    fmt_ns,
    fmt_rate,
    interleave,
    note,
    percentile,
    table,
)
from kernel.journal import Journal, replay
from tradekernel_sdk import codec
from tradekernel_sdk.orders import (
    Liquidity,
    OrderAccepted,
    OrderFilled,
    OrderRequest,
    OrderSide,
    OrderType,
)

NAME = "journal"

_MANY = 200_000
_FEW = 2_000
_QUICK_MANY = 20_000
_QUICK_FEW = 300
_BATCH = 256
_GOAL_PER_S = 100_000

BATCH = "journal fsync=batch (256 / 5 ms)"
NEVER = "journal fsync=never"
ALWAYS = "journal fsync=always"
SQLITE_NORMAL = "sqlite WAL NORMAL, commit per 256"
SQLITE_FULL_BATCH = "sqlite WAL FULL, commit per 256"
SQLITE_FULL = "sqlite WAL FULL, commit per record"

# contender -> (uses the large record count, durable on return of each call)
_CASES: dict[str, tuple[bool, str]] = {
    BATCH: (True, "every 256 records / 5 ms, and on sync()"),
    NEVER: (True, "never (process crash only)"),
    ALWAYS: (False, "every record"),
    SQLITE_NORMAL: (True, "at checkpoints (process crash only)"),
    SQLITE_FULL_BATCH: (True, "every 256 records"),
    SQLITE_FULL: (False, "every record"),
}

_Record = tuple[str, bytes, int]


def make_records(count: int) -> list[_Record]:
    """Return ``count`` (kind, payload, ts_ns): an order's submit, acceptance and fill in turn."""
    records: list[_Record] = []
    ts = 1_723_075_200_000_000_000
    for i in range(count):
        order = f"mm-btcusdt-20240808-{i // 3:09d}"
        step = i % 3
        event: Any
        if step == 0:
            kind = "order.submit"
            event = OrderRequest(
                order, "binance", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 150_000, 6_173_763_000
            )
        elif step == 1:
            kind = "order.accepted"
            event = OrderAccepted(order, f"{8_389_765_612_345_678 + i}", "binance", "BTCUSDT", ts)
        else:
            kind = "order.filled"
            event = OrderFilled(
                order,
                f"{8_389_765_612_345_678 + i}",
                "binance",
                "BTCUSDT",
                ts,
                f"binance-fill-{392_817_465 + i:012d}",
                6_173_763_000,
                150_000,
                0,
                -4_631,
                Liquidity.TAKER,
            )
        # With its context (strategy and risk-check tags), padded to 150 bytes.
        context = f"strategy=mm-btcusdt-v3;risk={i:010d};"
        size = len(codec.encode([event, context]))
        payload = codec.encode([event, context.ljust(len(context) + max(0, 150 - size))])
        records.append((kind, payload, ts + i * 1_000))
    return records


class _Case:
    """Prepares one contender's bodies over a fresh file in ``root``."""

    def __init__(self, name: str, records: Sequence[_Record], root: Path) -> None:
        self.name = name
        self.records = records
        self.root = root
        self._runs = 0

    def _path(self, suffix: str) -> Path:
        self._runs += 1
        return self.root / f"{self.name.split()[0]}-{id(self)}-{self._runs}.{suffix}"

    def prepare(self) -> Callable[[], object]:
        return self._body(timed=False)

    def prepare_latency(self) -> Callable[[], object]:
        return self._body(timed=True)

    def _body(self, *, timed: bool) -> Callable[[], object]:
        if self.name.startswith("journal"):
            return self._journal_body(timed)
        return self._sqlite_body(timed)

    def _journal_body(self, timed: bool) -> Callable[[], object]:
        policy = {BATCH: "batch", NEVER: "never", ALWAYS: "always"}[self.name]
        journal = Journal.open(self._path("tkj"), fsync=policy)  # type: ignore[arg-type]
        records = self.records
        append = journal.append
        now = time.perf_counter_ns

        def body() -> object:
            for kind, payload, ts in records:
                append(kind, payload, ts)
            journal.close()
            return journal.last_sequence

        def timed_body() -> object:
            latencies = []
            for kind, payload, ts in records:
                started = now()
                append(kind, payload, ts)
                latencies.append(now() - started)
            journal.close()
            return latencies

        return timed_body if timed else body

    def _sqlite_body(self, timed: bool) -> Callable[[], object]:
        path = self._path("sqlite")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'NORMAL' if self.name == SQLITE_NORMAL else 'FULL'}")
        db.execute(
            "CREATE TABLE journal (sequence INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, "
            "kind TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        every = 1 if self.name == SQLITE_FULL else _BATCH
        records = self.records
        execute = db.execute
        insert = "INSERT INTO journal VALUES (?, ?, ?, ?)"
        now = time.perf_counter_ns

        # One INSERT per record; autocommitted, or in a transaction of ``every`` records.
        def append(sequence: int, kind: str, payload: bytes, ts: int) -> None:
            if every == 1:
                execute(insert, (sequence, ts, kind, payload))
                return
            if sequence % every == 1:
                execute("BEGIN")
            execute(insert, (sequence, ts, kind, payload))
            if not sequence % every:
                execute("COMMIT")

        def finish() -> int:
            if db.in_transaction:
                execute("COMMIT")
            (count,) = execute("SELECT count(*) FROM journal").fetchone()
            db.close()
            return int(count)

        def body() -> object:
            for sequence, (kind, payload, ts) in enumerate(records, start=1):
                append(sequence, kind, payload, ts)
            return finish()

        def timed_body() -> object:
            latencies = []
            for sequence, (kind, payload, ts) in enumerate(records, start=1):
                started = now()
                append(sequence, kind, payload, ts)
                latencies.append(now() - started)
            finish()
            return latencies

        return timed_body if timed else body


def _check_round_trip(root: Path, records: Sequence[_Record]) -> None:
    """Fail unless a batch journal gives back exactly the records it was given."""
    path = root / "check.tkj"
    with Journal.open(path) as journal:
        for kind, payload, ts in records:
            journal.append(kind, payload, ts)
    back = [(r.kind, r.payload, r.ts_ns) for r in replay(path)]
    if back != list(records):
        raise AssertionError("the journal did not give back the records it was given")
    path.unlink()


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    many, few = (_QUICK_MANY, _QUICK_FEW) if ctx.quick else (_MANY, _FEW)
    all_records = make_records(many)
    payload_mean = sum(len(p) for _, p, _ in all_records) / many
    print(
        f"\n[journal] {fmt_int(many)} records per run ({fmt_int(few)} for per-record fsync), "
        f"payload {payload_mean:.0f} bytes on average, {ctx.runs} runs"
    )
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tk-journal-bench-") as tmp:
        root = Path(tmp)
        print(f"  files in {root}")
        _check_round_trip(root, all_records[:5_000])
        cases = {
            name: _Case(name, all_records if large else all_records[:few], root)
            for name, (large, _) in _CASES.items()
        }
        timings = interleave([Contender(n, c.prepare) for n, c in cases.items()], ctx.runs)
        for name, case in cases.items():
            if timings.results[name] != len(case.records):
                raise AssertionError(f"{name} stored {timings.results[name]} records")
        latency_run = interleave([Contender(n, c.prepare_latency) for n, c in cases.items()], 1)

    rows = []
    for name, case in cases.items():
        count = len(case.records)
        seconds = timings.median(name)
        latencies = latency_run.results[name]
        assert isinstance(latencies, list)
        entry = {
            "records": count,
            "median_s": seconds,
            "runs_s": timings.seconds[name],
            "records_per_s": count / seconds,
            "append_p50_ns": percentile(latencies, 50),
            "append_p99_ns": percentile(latencies, 99),
            "append_p999_ns": percentile(latencies, 99.9),
            "append_max_ns": max(latencies),
            "durable": _CASES[name][1],
        }
        figures[name] = entry
        rows.append(
            [
                name,
                fmt_int(count),
                fmt_rate(entry["records_per_s"]),
                fmt_ns(entry["append_p50_ns"]),
                fmt_ns(entry["append_p99_ns"]),
                fmt_ns(entry["append_p999_ns"]),
                fmt_ns(entry["append_max_ns"]),
                entry["durable"],
            ]
        )
    table(
        f"journal: append throughput (median of {ctx.runs} interleaved runs) and per-append "
        "latency (one instrumented run)",
        ["contender", "records", "throughput", "p50", "p99", "p99.9", "max", "fsync"],
        rows,
    )
    note("throughput includes the final close/commit; latency includes ~50 ns of timer overhead")
    batch_rate = figures[BATCH]["records_per_s"]
    verdict = "met" if batch_rate >= _GOAL_PER_S else "MISSED"
    print(f"  batched journal: {fmt_rate(batch_rate)} (goal >= {fmt_rate(_GOAL_PER_S)}: {verdict})")
    for peer, ours in ((SQLITE_FULL_BATCH, BATCH), (SQLITE_FULL, ALWAYS)):
        ratio = figures[ours]["records_per_s"] / figures[peer]["records_per_s"]
        print(f"  {ours} vs {peer} (same durability): {ratio:.2f}x")
    return {
        "records": many,
        "records_per_record_fsync": few,
        "payload_mean_bytes": payload_mean,
        "sqlite_version": sqlite3.sqlite_version,
        "goal_records_per_s": _GOAL_PER_S,
        "goal_met": batch_rate >= _GOAL_PER_S,
        "contenders": figures,
    }
