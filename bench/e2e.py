"""``e2e``: recorded bytes through the whole market-data path, against ccxt's parse + apply.

The recorded frames are decompressed and held in memory as ``RawFrame`` before
timing. Timed: ``BinanceFeed.on_frame`` for every frame (parse, sync, book,
bookTicker oracle checks, publish on a :class:`Bus` with one subscriber on
``data.>`` that counts messages), with a fresh bus and feed per run. Measured
for (a) every frame of the recordings (depth, bookTicker, trade) and (b) the
depth frames only (the REST snapshot and the ``depthUpdate`` lines), for spot,
USD-M, and both merged by receive time through two feeds on one bus.

The peer is ccxt's path for the same depth frames, written out lean: the JSON
parser ccxt's websocket client uses (orjson when it is installed, as here, else
the stdlib ``json``), the snapshot through ``OrderBook.reset``, diffs cached
until the snapshot and then the sync checks of ccxt's binance
``handle_order_book``, ``float()`` per price and size as its ``safe_float``,
``storeArray([price, size])`` asks first then bids, and reading the best levels.
ccxt's own per-message overheads (``safe_*`` helpers, ISO-8601 timestamps,
futures resolution) are left out, so its real cost is higher than measured.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
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
    load_frames,
    note,
    table,
    version_of,
)
from kernel.adapters.base import RawFrame
from kernel.adapters.binance import BinanceFeed
from kernel.bus import Bus
from kernel.recording import merge_frames

NAME = "e2e"

_SNAPSHOT_PREFIX = b'{"lastUpdateId"'
_GOAL_LEVELS_PER_S = 1_000_000
_PROFILE_TOP = 15

_Work = list[tuple[str, RawFrame]]  # market, frame


def _is_depth(frame: RawFrame) -> bool:
    payload = frame.payload
    return payload.startswith(_SNAPSHOT_PREFIX) or b'"depthUpdate"' in payload


def _frames(ctx: Context) -> dict[str, _Work]:
    """Return the frames per case ("spot", "usdm", "combined"), tagged with their market."""
    per_market: dict[str, list[RawFrame]] = {}
    for market, files in ctx.data.markets().items():
        streams = [load_frames(paths, ctx.line_limit) for paths in files.values()]
        per_market[market] = list(merge_frames(*streams))
    cases: dict[str, _Work] = {
        market: [(market, frame) for frame in frames] for market, frames in per_market.items()
    }
    if len(per_market) > 1:
        tagged = [
            [(frame.recv_ns, market, frame) for frame in frames]
            for market, frames in per_market.items()
        ]
        cases["combined"] = [
            (market, frame) for _, market, frame in heapq.merge(*tagged, key=itemgetter(0))
        ]
    return cases


# -- ours ---------------------------------------------------------------------


def _ours(work: _Work) -> Callable[[], Callable[[], object]]:
    def prepare() -> Callable[[], object]:
        bus = Bus()
        received = [0]

        def count(_message: object) -> None:
            received[0] += 1

        bus.subscribe("data.>", count)
        feeds = {
            market: BinanceFeed(bus, "spot" if market == "spot" else "usdm", verify=True)
            for market in {market for market, _ in work}
        }
        handlers = {market: feed.on_frame for market, feed in feeds.items()}
        pairs = [(handlers[market], frame) for market, frame in work]

        def body() -> dict[str, int]:
            for on_frame, frame in pairs:
                on_frame(frame)
            totals = {"messages": received[0]}
            for feed in feeds.values():
                for name, value in feed.stats.as_dict().items():
                    totals[name] = totals.get(name, 0) + value
            return totals

        return body

    return prepare


# -- ccxt's path ----------------------------------------------------------------


class _CcxtBinanceDepth:
    """ccxt's binance depth handling for one market, reduced to its parse and apply work."""

    def __init__(self, futures: bool, loads: Callable[[bytes], Any]) -> None:
        from ccxt.async_support.base.ws import order_book

        self.futures = futures
        self.loads = loads
        self.new_book = order_book.OrderBook
        self.books: dict[str, Any] = {}
        self.symbol_by_source: dict[str, str] = {}
        self.level_updates = 0

    def on_frame(self, frame: RawFrame) -> None:
        message = self.loads(frame.payload)
        data = message.get("data")
        if data is None:
            if "lastUpdateId" in message:
                self._snapshot(message, self.symbol_by_source[frame.source])
            return
        symbol = data["s"]
        self.symbol_by_source[frame.source] = symbol
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = self.new_book()
        if book["nonce"] is None:
            book.cache.append(data)  # buffered until the snapshot
            return
        nonce = book["nonce"]
        first_id = data["U"]
        last_id = data["u"]
        if self.futures:
            if last_id < nonce:
                return
            accepted = first_id <= nonce or data["pu"] == nonce
        else:
            if last_id <= nonce:
                return
            if book["timestamp"] is None:
                accepted = first_id - 1 <= nonce <= last_id - 1
            else:
                accepted = first_id - 1 == nonce
        if not accepted:
            raise AssertionError(f"ccxt path: {symbol} out of sequence at U={first_id}")
        self._apply(book, data)

    def _snapshot(self, message: dict[str, Any], symbol: str) -> None:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = self.new_book()
        book.reset(
            {
                "bids": [[float(price), float(size)] for price, size in message["bids"]],
                "asks": [[float(price), float(size)] for price, size in message["asks"]],
                "nonce": message["lastUpdateId"],
            }
        )
        cached = book.cache
        book.cache = []
        for data in cached:
            nonce = book["nonce"]
            first_id = data["U"]
            last_id = data["u"]
            if self.futures:
                if last_id < nonce:
                    continue
                if (first_id <= nonce <= last_id) or data["pu"] == nonce:
                    self._apply(book, data)
            elif last_id > nonce and first_id - 1 <= nonce <= last_id - 1:
                self._apply(book, data)

    def _apply(self, book: Any, data: dict[str, Any]) -> None:
        asks = data["a"]
        bids = data["b"]
        store = book["asks"].storeArray
        for price, size in asks:
            store([float(price), float(size)])
        store = book["bids"].storeArray
        for price, size in bids:
            store([float(price), float(size)])
        self.level_updates += len(asks) + len(bids)
        book["nonce"] = data["u"]
        book["timestamp"] = data["E"]
        bid_side = book["bids"]
        ask_side = book["asks"]
        _bid = bid_side[0] if bid_side else None
        _ask = ask_side[0] if ask_side else None


def _ccxt(work: _Work, loads: Callable[[bytes], Any]) -> Callable[[], Callable[[], object]]:
    def prepare() -> Callable[[], object]:
        paths = {
            market: _CcxtBinanceDepth(market != "spot", loads)
            for market in {market for market, _ in work}
        }
        handlers = {market: path.on_frame for market, path in paths.items()}
        pairs = [(handlers[market], frame) for market, frame in work]

        def body() -> dict[str, int]:
            for on_frame, frame in pairs:
                on_frame(frame)
            return {
                "frames": len(pairs),
                "level_updates": sum(path.level_updates for path in paths.values()),
            }

        return body

    return prepare


# -- the benchmark --------------------------------------------------------------


def _profile(name: str, prepare: Callable[[], Callable[[], object]]) -> list[dict[str, Any]]:
    """Profile one untimed run of a contender; print and return its costliest functions."""
    import cProfile
    import pstats

    body = prepare()
    profiler = cProfile.Profile()
    profiler.runcall(body)
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    top: list[dict[str, Any]] = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in rows[:_PROFILE_TOP]:
        where = f"{Path(filename).name}:{line}({function})" if line else function
        top.append(
            {
                "function": where,
                "calls": calls,
                "own_s": tottime,
                "own_share": tottime / total,
                "cumulative_s": cumtime,
            }
        )
    table(
        f"e2e profile of '{name}' (cProfile, one run; profiling inflates the times)",
        ["function", "calls", "own", "own share", "cumulative"],
        [
            [
                entry["function"],
                fmt_int(entry["calls"]),
                f"{entry['own_s']:.3f} s",
                f"{entry['own_share']:.0%}",
                f"{entry['cumulative_s']:.3f} s",
            ]
            for entry in top
        ],
    )
    return top


def run(ctx: Context) -> dict[str, Any]:
    """Run the benchmark; print its tables and return its figures."""
    cases = _frames(ctx)
    depth_cases = {
        case: [item for item in work if _is_depth(item[1])] for case, work in cases.items()
    }
    print(
        "\n[e2e] frames in memory: "
        + ", ".join(
            f"{case} {fmt_int(len(work))} ({fmt_int(len(depth_cases[case]))} depth)"
            for case, work in cases.items()
        )
    )
    skipped: dict[str, str] = {}
    contenders: list[Contender] = []
    for case, work in cases.items():
        contenders.append(Contender(f"ours {case} all", _ours(work)))
    for case, work in depth_cases.items():
        contenders.append(Contender(f"ours {case} depth", _ours(work)))
    loads_name = None
    if have("ccxt"):
        from ccxt.async_support.base.ws import client as ccxt_client

        loads = ccxt_client.json_parser.loads
        loads_name = ccxt_client.json_parser.__name__
        for case, work in depth_cases.items():
            contenders.append(Contender(f"ccxt {case} depth", _ccxt(work, loads)))
    else:
        skipped["ccxt"] = "ccxt is not installed"
        print("  SKIPPED ccxt peer: ccxt is not installed")

    timings = interleave(contenders, ctx.runs)

    figures: dict[str, Any] = {}
    rows = []
    for contender in contenders:
        name = contender.name
        result = timings.results[name]
        assert isinstance(result, dict)
        seconds = timings.median(name)
        levels = result["level_updates"]
        frames = result["frames"]
        entry: dict[str, Any] = {
            "median_s": seconds,
            "runs_s": timings.seconds[name],
            "frames": frames,
            "level_updates": levels,
            "frames_per_s": frames / seconds,
            "level_updates_per_s": levels / seconds,
            "ns_per_frame": seconds / frames * 1e9,
        }
        if name.startswith("ours"):
            entry["bus_messages"] = result["messages"]
            for problem in ("gaps", "oracle_mismatches", "crossed_books", "malformed_frames"):
                if result[problem]:
                    raise AssertionError(f"{name}: {problem} = {result[problem]}")
            entry["oracle_checks"] = result["oracle_checks"]
        figures[name] = entry

    ratios: dict[str, Any] = {}
    for case in cases:
        ours = figures[f"ours {case} depth"]
        peer = figures.get(f"ccxt {case} depth")
        if peer is not None:
            if peer["level_updates"] != ours["level_updates"]:
                raise AssertionError(
                    f"{case}: ccxt applied {peer['level_updates']} level updates, "
                    f"ours {ours['level_updates']}"
                )
            ratios[case] = peer["median_s"] / ours["median_s"]
    for contender in contenders:
        name = contender.name
        entry = figures[name]
        who, case, kind = name.split()
        rows.append(
            [
                name,
                fmt_int(entry["frames"]),
                fmt_int(entry["level_updates"]),
                f"{entry['median_s']:.3f} s",
                fmt_rate(entry["frames_per_s"]),
                fmt_ns(entry["ns_per_frame"]),
                fmt_rate(entry["level_updates_per_s"]),
                fmt_ratio(ratios.get(case)) if kind == "depth" and who == "ours" else "",
            ]
        )
    table(
        f"e2e: RawFrame -> BinanceFeed.on_frame -> book -> bus (median of {ctx.runs} "
        "interleaved runs)",
        [
            "contender",
            "frames",
            "level upd.",
            "median",
            "frames",
            "per frame",
            "level updates",
            "vs ccxt",
        ],
        rows,
    )
    if loads_name is not None:
        note(f"the ccxt path parses with {loads_name}, the parser ccxt's ws client picked")
    goals: dict[str, Any] = {}
    for name, entry in figures.items():
        if name.startswith("ours"):
            rate = entry["level_updates_per_s"]
            goals[name] = {"level_updates_per_s": rate, "met": rate >= _GOAL_LEVELS_PER_S}
    for kind in ("all", "depth"):
        key = "ours combined " + kind if "combined" in cases else f"ours spot {kind}"
        rate = figures[key]["level_updates_per_s"]
        verdict = "met" if rate >= _GOAL_LEVELS_PER_S else "MISSED"
        print(f"  {key}: {fmt_rate(rate)} level updates (goal >= 1 M/s on one core: {verdict})")
    profile = None
    if ctx.profile:
        target = next(c for c in contenders if c.name == f"ours {next(reversed(cases))} all")
        profile = _profile(target.name, target.prepare)
    return {
        "profile": profile,
        "frames": {case: len(work) for case, work in cases.items()},
        "depth_frames": {case: len(work) for case, work in depth_cases.items()},
        "contenders": figures,
        "ours_vs_ccxt_depth": ratios,
        "goal_level_updates_per_s": _GOAL_LEVELS_PER_S,
        "goals": goals,
        "ccxt_json_parser": loads_name,
        "skipped": skipped,
        "versions": {"ccxt": version_of("ccxt"), "orjson": version_of("orjson")},
    }
