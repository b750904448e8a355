"""``book``: applying the recorded depth diffs to an order book, ours against ccxt and Nautilus.

All contenders get exactly the same level updates (the diffs a synced book
applies, see :mod:`bench.recorded`), with inputs pre-built in each one's own
representation before timing, and a fresh book loaded with the snapshot per
run. Timed per diff: the diff's level updates plus reading the best bid and
best ask, as a consumer of the book does after every update.

* ours: ``L2Book.apply(bids, asks)`` on fixed-point ``(price, size)`` int pairs,
  then ``best_bid_price()`` / ``best_ask_price()``;
* ccxt: ``OrderBookSide.storeArray([price, size])`` per level on float pairs, asks
  first then bids as ccxt's binance ``handle_deltas`` does (its ``store`` builds
  that same list; the extra call layers of ``handle_delta`` and ``safe_float`` are
  left out, which favours ccxt), then ``book['bids'][0]`` / ``book['asks'][0]``;
* Nautilus: ``OrderBook.apply_delta`` per level on prepared ``OrderBookDelta``
  objects (L2_MBP, UPDATE or DELETE for size 0), then ``best_bid_price()`` /
  ``best_ask_price()``; also ``apply_deltas`` with one ``OrderBookDeltas`` per diff,
  Nautilus's batch path, for reference.

Before timing, the final books of all contenders and of the real
``BinanceFeed`` must agree on the top 20 levels of each side, compared
exactly as decimals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from bench.common import (
    Contender,
    Context,
    fmt_int,
    fmt_ns,
    fmt_rate,
    fmt_ratio,
    have,
    interleave,
    median,
    note,
    percentile,
    table,
    version_of,
)
from bench.recorded import DepthStream, check_against_feed, depth_streams
from kernel.book import L2Book
from tradekernel_sdk.fixedpoint import FixedConverter, from_fixed
from tradekernel_sdk.types import Level

NAME = "book"

OURS = "tradekernel L2Book"
CCXT = "ccxt OrderBook"
NAUTILUS = "nautilus OrderBook.apply_delta"
NAUTILUS_BATCH = "nautilus OrderBook.apply_deltas"

_TOP = 20

_Top = tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]
_Diff = tuple[list[Level], list[Level]]
_FloatDiff = tuple[list[tuple[float, float]], list[tuple[float, float]]]


# -- ours ---------------------------------------------------------------------


def _fixed(raw: list[list[str]], prices: FixedConverter, sizes: FixedConverter) -> list[Level]:
    return [(prices[price], sizes[size]) for price, size in raw]


class _Ours:
    """Fixed-point inputs and fresh :class:`L2Book` per run."""

    def __init__(self, streams: Sequence[DepthStream]) -> None:
        self.work: list[tuple[list[Level], list[Level], list[_Diff]]] = []
        self.precisions: list[tuple[int, int]] = []
        for stream in streams:
            prices = FixedConverter(stream.instrument.price_precision)
            sizes = FixedConverter(stream.instrument.size_precision)
            diffs = [
                (_fixed(diff["b"], prices, sizes), _fixed(diff["a"], prices, sizes))
                for diff in stream.diffs
            ]
            snap = stream.snapshot
            self.work.append(
                (_fixed(snap["bids"], prices, sizes), _fixed(snap["asks"], prices, sizes), diffs)
            )
            self.precisions.append(
                (stream.instrument.price_precision, stream.instrument.size_precision)
            )

    def level_updates(self) -> int:
        return sum(len(b) + len(a) for _, _, diffs in self.work for b, a in diffs)

    def _books(self) -> list[tuple[L2Book, list[_Diff]]]:
        books = []
        for bids, asks, diffs in self.work:
            book = L2Book()
            book.load(bids, asks)
            books.append((book, diffs))
        return books

    def prepare(self) -> Callable[[], object]:
        work = self._books()

        def body() -> None:
            for book, diffs in work:
                apply = book.apply
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for bids, asks in diffs:
                    apply(bids, asks)
                    _bid = best_bid()
                    _ask = best_ask()

        return body

    def prepare_latency(self) -> Callable[[], object]:
        work = self._books()

        def body() -> tuple[list[int], list[_Top]]:
            now = time.perf_counter_ns
            latencies: list[int] = []
            record = latencies.append
            for book, diffs in work:
                apply = book.apply
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for bids, asks in diffs:
                    started = now()
                    apply(bids, asks)
                    _bid = best_bid()
                    _ask = best_ask()
                    record(now() - started)
            tops = [
                _ours_top(book, precisions)
                for (book, _), precisions in zip(work, self.precisions, strict=True)
            ]
            return latencies, tops

        return body


def _ours_top(book: L2Book, precisions: tuple[int, int]) -> _Top:
    price_precision, size_precision = precisions

    def side(levels: list[Level]) -> list[tuple[Decimal, Decimal]]:
        return [
            (Decimal(from_fixed(price, price_precision)), Decimal(from_fixed(size, size_precision)))
            for price, size in levels
        ]

    return side(book.bid_levels(_TOP)), side(book.ask_levels(_TOP))


# -- ccxt ---------------------------------------------------------------------


def _floats(raw: list[list[str]], memo: dict[str, float]) -> list[tuple[float, float]]:
    """Return float pairs, sharing one float object per distinct string."""
    out = []
    for price_text, size_text in raw:
        price = memo.get(price_text)
        if price is None:
            price = memo[price_text] = float(price_text)
        size = memo.get(size_text)
        if size is None:
            size = memo[size_text] = float(size_text)
        out.append((price, size))
    return out


class _Ccxt:
    """Float inputs (as ccxt gets them after ``safe_float``) and a fresh ccxt OrderBook per run."""

    def __init__(self, streams: Sequence[DepthStream]) -> None:
        self.work: list[tuple[list[list[float]], list[list[float]], list[_FloatDiff]]] = []
        for stream in streams:
            memo: dict[str, float] = {}
            diffs = [(_floats(diff["b"], memo), _floats(diff["a"], memo)) for diff in stream.diffs]
            snap = stream.snapshot
            self.work.append(
                (
                    [list(pair) for pair in _floats(snap["bids"], memo)],
                    [list(pair) for pair in _floats(snap["asks"], memo)],
                    diffs,
                )
            )

    def level_updates(self) -> int:
        return sum(len(b) + len(a) for _, _, diffs in self.work for b, a in diffs)

    def _books(self) -> list[tuple[Any, list[_FloatDiff]]]:
        from ccxt.async_support.base.ws import order_book

        books = []
        for bids, asks, diffs in self.work:
            # The snapshot's level lists are stored by the book: give it copies.
            book = order_book.OrderBook(
                {"bids": [list(level) for level in bids], "asks": [list(level) for level in asks]}
            )
            books.append((book, diffs))
        return books

    def prepare(self) -> Callable[[], object]:
        work = self._books()

        def body() -> None:
            for book, diffs in work:
                bid_side = book["bids"]
                ask_side = book["asks"]
                store_bid = bid_side.storeArray
                store_ask = ask_side.storeArray
                for bids, asks in diffs:
                    for price, size in asks:
                        store_ask([price, size])
                    for price, size in bids:
                        store_bid([price, size])
                    _bid = bid_side[0] if bid_side else None
                    _ask = ask_side[0] if ask_side else None

        return body

    def prepare_latency(self) -> Callable[[], object]:
        work = self._books()

        def body() -> tuple[list[int], list[_Top]]:
            now = time.perf_counter_ns
            latencies: list[int] = []
            record = latencies.append
            for book, diffs in work:
                bid_side = book["bids"]
                ask_side = book["asks"]
                store_bid = bid_side.storeArray
                store_ask = ask_side.storeArray
                for bids, asks in diffs:
                    started = now()
                    for price, size in asks:
                        store_ask([price, size])
                    for price, size in bids:
                        store_bid([price, size])
                    _bid = bid_side[0] if bid_side else None
                    _ask = ask_side[0] if ask_side else None
                    record(now() - started)
            tops = [_ccxt_top(book) for book, _ in work]
            return latencies, tops

        return body


def _ccxt_top(book: Any) -> _Top:
    def side(levels: list[list[float]]) -> list[tuple[Decimal, Decimal]]:
        # repr() of a float parsed from a short decimal string gives that decimal back.
        return [(Decimal(repr(price)), Decimal(repr(size))) for price, size in levels[:_TOP]]

    return side(book["bids"]), side(book["asks"])


# -- NautilusTrader -----------------------------------------------------------


class _DeltaMaker:
    """Build Nautilus ``OrderBookDelta`` objects for one instrument, sharing Price/Quantity."""

    def __init__(self, instrument_id: Any) -> None:
        from nautilus_trader.model.data import BookOrder, OrderBookDelta
        from nautilus_trader.model.enums import BookAction
        from nautilus_trader.model.objects import Price, Quantity

        self.instrument_id = instrument_id
        self.prices: dict[str, Any] = {}
        self.sizes: dict[str, Any] = {}
        self._order = BookOrder
        self._delta = OrderBookDelta
        self._price = Price.from_str
        self._size = Quantity.from_str
        self._update = BookAction.UPDATE
        self._delete = BookAction.DELETE

    def __call__(
        self, side: Any, level: list[str], flags: int, sequence: int, *, action: Any = None
    ) -> Any:
        price_text, size_text = level
        price = self.prices.get(price_text)
        if price is None:
            price = self.prices[price_text] = self._price(price_text)
        size = self.sizes.get(size_text)
        if size is None:
            size = self.sizes[size_text] = self._size(size_text)
        if action is None:
            action = self._delete if size.raw == 0 else self._update
        order = self._order(side, price, size, 0)
        return self._delta(self.instrument_id, action, order, flags, sequence, 0, 0)


class _Nautilus:
    """Prepared ``OrderBookDelta`` objects and a fresh Rust-backed ``OrderBook`` per run."""

    def __init__(self, streams: Sequence[DepthStream]) -> None:
        from nautilus_trader.model.data import OrderBookDeltas
        from nautilus_trader.model.enums import BookAction, OrderSide, RecordFlag
        from nautilus_trader.model.identifiers import InstrumentId

        self.work: list[tuple[Any, list[Any], list[list[Any]], list[Any]]] = []
        last_flag = int(RecordFlag.F_LAST)
        snapshot_flag = int(RecordFlag.F_SNAPSHOT)
        buy, sell, add = OrderSide.BUY, OrderSide.SELL, BookAction.ADD
        for stream in streams:
            suffix = "" if stream.market == "spot" else "-PERP"
            instrument_id = InstrumentId.from_str(f"{stream.symbol}{suffix}.BINANCE")
            delta = _DeltaMaker(instrument_id)
            snap = stream.snapshot
            snap_id = snap["lastUpdateId"]
            snapshot = [
                delta(buy, level, snapshot_flag, snap_id, action=add) for level in snap["bids"]
            ]
            snapshot += [
                delta(sell, level, snapshot_flag, snap_id, action=add) for level in snap["asks"]
            ]
            diffs: list[list[Any]] = []
            for diff in stream.diffs:
                sequence = diff["u"]
                levels = [(buy, level) for level in diff["b"]]
                levels += [(sell, level) for level in diff["a"]]
                last = len(levels) - 1
                diffs.append(
                    [
                        delta(side, level, last_flag if i == last else 0, sequence)
                        for i, (side, level) in enumerate(levels)
                    ]
                )
            batches = [
                OrderBookDeltas(instrument_id, deltas) if deltas else None for deltas in diffs
            ]
            self.work.append((instrument_id, snapshot, diffs, batches))

    def level_updates(self) -> int:
        return sum(len(deltas) for _, _, diffs, _ in self.work for deltas in diffs)

    def _books(self) -> list[tuple[Any, list[list[Any]], list[Any]]]:
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.enums import BookType

        books = []
        for instrument_id, snapshot, diffs, batches in self.work:
            book = OrderBook(instrument_id, BookType.L2_MBP)
            for delta in snapshot:
                book.apply_delta(delta)
            books.append((book, diffs, batches))
        return books

    def prepare(self) -> Callable[[], object]:
        work = self._books()

        def body() -> None:
            for book, diffs, _ in work:
                apply = book.apply_delta
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for deltas in diffs:
                    for delta in deltas:
                        apply(delta)
                    _bid = best_bid()
                    _ask = best_ask()

        return body

    def prepare_batch(self) -> Callable[[], object]:
        work = self._books()

        def body() -> None:
            for book, _, batches in work:
                apply = book.apply_deltas
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for batch in batches:
                    if batch is not None:
                        apply(batch)
                    _bid = best_bid()
                    _ask = best_ask()

        return body

    def prepare_latency(self) -> Callable[[], object]:
        work = self._books()

        def body() -> tuple[list[int], list[_Top]]:
            now = time.perf_counter_ns
            latencies: list[int] = []
            record = latencies.append
            for book, diffs, _ in work:
                apply = book.apply_delta
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for deltas in diffs:
                    started = now()
                    for delta in deltas:
                        apply(delta)
                    _bid = best_bid()
                    _ask = best_ask()
                    record(now() - started)
            tops = [_nautilus_top(book) for book, _, _ in work]
            return latencies, tops

        return body

    def prepare_batch_latency(self) -> Callable[[], object]:
        work = self._books()

        def body() -> tuple[list[int], list[_Top]]:
            now = time.perf_counter_ns
            latencies: list[int] = []
            record = latencies.append
            for book, _, batches in work:
                apply = book.apply_deltas
                best_bid = book.best_bid_price
                best_ask = book.best_ask_price
                for batch in batches:
                    started = now()
                    if batch is not None:
                        apply(batch)
                    _bid = best_bid()
                    _ask = best_ask()
                    record(now() - started)
            tops = [_nautilus_top(book) for book, _, _ in work]
            return latencies, tops

        return body


def _nautilus_top(book: Any) -> _Top:
    def side(levels: list[Any]) -> list[tuple[Decimal, Decimal]]:
        out = []
        for level in levels[:_TOP]:
            orders = level.orders()
            if len(orders) != 1:
                raise AssertionError(f"an L2 level holds {len(orders)} orders")
            out.append((Decimal(str(level.price)), Decimal(str(orders[0].size))))
        return out

    return side(book.bids()), side(book.asks())


# -- the benchmark ------------------------------------------------------------


def _timer_overhead_ns() -> float:
    now = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        started = now()
        samples.append(now() - started)
    return median(samples)


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    streams = depth_streams(ctx)
    total = sum(stream.level_updates for stream in streams)
    diff_count = sum(len(stream.diffs) for stream in streams)
    print(
        f"\n[book] {len(streams)} depth streams ({', '.join(s.name for s in streams)}): "
        f"{fmt_int(diff_count)} diffs, {fmt_int(total)} level updates"
    )
    feed_books = [check_against_feed(ctx, stream) for stream in streams]
    precisions = [
        (stream.instrument.price_precision, stream.instrument.size_precision) for stream in streams
    ]
    reference = [
        _ours_top(book, precision) for book, precision in zip(feed_books, precisions, strict=True)
    ]
    print("  the real BinanceFeed applied the same level updates with no gap or oracle mismatch")

    contenders: list[Contender] = []
    latency_contenders: list[Contender] = []
    skipped: dict[str, str] = {}
    ours = _Ours(streams)
    contenders.append(Contender(OURS, ours.prepare))
    latency_contenders.append(Contender(OURS, ours.prepare_latency))
    counts = {OURS: ours.level_updates()}

    if have("ccxt"):
        ccxt = _Ccxt(streams)
        contenders.append(Contender(CCXT, ccxt.prepare))
        latency_contenders.append(Contender(CCXT, ccxt.prepare_latency))
        counts[CCXT] = ccxt.level_updates()
    else:
        skipped[CCXT] = "ccxt is not installed"
    if have("nautilus_trader"):
        nautilus = _Nautilus(streams)
        contenders.append(Contender(NAUTILUS, nautilus.prepare))
        contenders.append(Contender(NAUTILUS_BATCH, nautilus.prepare_batch))
        latency_contenders.append(Contender(NAUTILUS, nautilus.prepare_latency))
        latency_contenders.append(Contender(NAUTILUS_BATCH, nautilus.prepare_batch_latency))
        counts[NAUTILUS] = counts[NAUTILUS_BATCH] = nautilus.level_updates()
    else:
        skipped[NAUTILUS] = skipped[NAUTILUS_BATCH] = (
            "nautilus_trader is not installed (pip install -e '.[bench]')"
        )
    for name, reason in skipped.items():
        print(f"  SKIPPED {name}: {reason}")
    for name, count in counts.items():
        if count != total:
            raise AssertionError(f"{name} got {count} level updates, expected {total}")

    # One instrumented run: per-diff latencies and the final books for the check.
    latency_run = interleave(latency_contenders, 1)
    latencies: dict[str, list[int]] = {}
    for name, result in latency_run.results.items():
        assert isinstance(result, tuple)
        per_diff, tops = result
        latencies[name] = per_diff
        for stream, top, expected in zip(streams, tops, reference, strict=True):
            if top != expected:
                raise AssertionError(f"{name}: top {_TOP} levels of {stream.name} differ")
    print(
        f"  verified: {len(latencies)} contenders' books equal the feed's book on the top {_TOP} "
        "levels of each side after all diffs"
    )

    timings = interleave(contenders, ctx.runs)
    overhead = _timer_overhead_ns()
    ours_median = timings.median(OURS)
    figures: dict[str, Any] = {}
    rows = []
    for contender in contenders:
        name = contender.name
        seconds = timings.median(name)
        per_diff = latencies[name]
        entry: dict[str, Any] = {
            "median_s": seconds,
            "runs_s": timings.seconds[name],
            "level_updates_per_s": total / seconds,
            "diff_latency_median_ns": median(per_diff),
            "diff_latency_p99_ns": percentile(per_diff, 99),
            "ours_speedup": seconds / ours_median,
        }
        figures[name] = entry
        rows.append(
            [
                name,
                f"{seconds:.3f} s",
                fmt_rate(entry["level_updates_per_s"]),
                fmt_ns(entry["diff_latency_median_ns"]),
                fmt_ns(entry["diff_latency_p99_ns"]),
                fmt_ratio(entry["ours_speedup"]),
            ]
        )
    table(
        f"book: apply {fmt_int(total)} level updates in {fmt_int(diff_count)} diffs + read best "
        f"bid/ask per diff (median of {ctx.runs} interleaved runs)",
        ["contender", "median", "level updates", "diff p50", "diff p99", "ours faster by"],
        rows,
    )
    note(
        f"per-diff latency from one instrumented run, including ~{overhead:.0f} ns of "
        "perf_counter_ns overhead per diff"
    )
    ratios: dict[str, Any] = {}
    goals = ((CCXT, 4.0), (NAUTILUS, 1.0))
    for name, goal in goals:
        if name in figures:
            ratio = figures[name]["ours_speedup"]
            ratios[f"ours_vs_{name.split()[0]}"] = {
                "ratio": ratio,
                "goal": goal,
                "met": ratio >= goal,
            }
            verdict = "met" if ratio >= goal else "MISSED"
            print(f"  ours vs {name}: {ratio:.2f}x (goal >= {goal:g}x: {verdict})")
        else:
            ratios[f"ours_vs_{name.split()[0]}"] = {"skipped": skipped[name]}
    if NAUTILUS_BATCH in figures:
        print(f"  ours vs {NAUTILUS_BATCH}: {figures[NAUTILUS_BATCH]['ours_speedup']:.2f}x")
    return {
        "streams": [s.name for s in streams],
        "diffs": diff_count,
        "level_updates": total,
        "timer_overhead_ns": overhead,
        "contenders": figures,
        "ratios": ratios,
        "skipped": skipped,
        "versions": {"ccxt": version_of("ccxt"), "nautilus_trader": version_of("nautilus_trader")},
    }
