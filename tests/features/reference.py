"""Straightforward reference implementations of every feature, recomputed from scratch.

Nothing here shares code with the features under test. Each value is
recomputed from the whole relevant history or window at every event — O(n) per
event, but with no running state to get wrong:

* exact features with :class:`fractions.Fraction`, then floored at the output's
  scale with :func:`math.floor` (so the integer division of the features is
  checked, not copied);
* real-valued features with :class:`decimal.Decimal` at 60 significant digits,
  evaluated by the textbook formula (two-pass variance, ``RSI = 100 − 100 /
  (1 + RS)``, ``ln`` of the exact price ratio), so a float result can be held
  to a tight tolerance.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    MarketEvent,
    Trade,
)

RATIO = 10**9
PRICE_SUBUNITS = 1_000
SLOPE = 10**6

PRECISION = decimal.Context(prec=60)


@dataclass(frozen=True)
class Settings:
    """The parameters both the features and the reference are run with."""

    imbalance_depths: tuple[int, ...] = (1, 5, 10)
    slope_depths: tuple[int, ...] = (5, 10)
    ofi_window: int = 100
    trade_window: int = 100
    vwap_window: int = 100
    bar_interval_ns: int = 1_000_000_000
    ema_period: int = 20
    rsi_period: int = 14
    macd: tuple[int, int, int] = (12, 26, 9)
    atr_period: int = 14
    bollinger_period: int = 20
    bollinger_width: float = 2.0
    volatility_window: int = 20

    def feature_params(self) -> dict[str, dict[str, Any]]:
        """Return each feature's parameters, by registered name."""
        fast, slow, signal = self.macd
        return {
            "book_imbalance": {"depths": list(self.imbalance_depths)},
            "microprice": {},
            "spread": {},
            "depth_slope": {"depths": list(self.slope_depths)},
            "ofi": {"window": self.ofi_window},
            "trade_flow": {"window": self.trade_window},
            "vwap_deviation": {"window": self.vwap_window},
            "ema": {"period": self.ema_period},
            "rsi": {"period": self.rsi_period},
            "macd": {"fast": fast, "slow": slow, "signal": signal},
            "atr": {"period": self.atr_period},
            "bollinger": {"period": self.bollinger_period, "width": self.bollinger_width},
            "parkinson": {"window": self.volatility_window},
            "garman_klass": {"window": self.volatility_window},
        }


def floor_at(value: Fraction, scale: int) -> int:
    """Return ``floor(value · scale)``."""
    return math.floor(value * scale)


# -- books ----------------------------------------------------------------------


@dataclass
class Book:
    """Two dictionaries; depth views sort the whole side every time."""

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def apply(self, update: BookDelta | BookSnapshot) -> None:
        if isinstance(update, BookSnapshot):
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, update.bids), (self.asks, update.asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def top_bids(self, depth: int) -> list[tuple[int, int]]:
        return sorted(self.bids.items(), reverse=True)[:depth]

    def top_asks(self, depth: int) -> list[tuple[int, int]]:
        return sorted(self.asks.items())[:depth]


def book_values(book: Book, settings: Settings) -> dict[str, Any]:
    """The imbalance, microprice, spread and slope columns of one book state."""
    values: dict[str, Any] = {}
    for depth in settings.imbalance_depths:
        bids, asks = book.top_bids(depth), book.top_asks(depth)
        if len(bids) < depth or len(asks) < depth:
            values[f"book_imbalance.imbalance_{depth}"] = None
            continue
        bid_total = sum(size for _, size in bids)
        ask_total = sum(size for _, size in asks)
        values[f"book_imbalance.imbalance_{depth}"] = floor_at(
            Fraction(bid_total - ask_total, bid_total + ask_total), RATIO
        )
    best_bids, best_asks = book.top_bids(1), book.top_asks(1)
    if not best_bids or not best_asks:
        for name in ("microprice.mid", "microprice.microprice", "spread.spread"):
            values[name] = None
        values["spread.relative_spread"] = None
    else:
        (bid, bid_size), (ask, ask_size) = best_bids[0], best_asks[0]
        mid = Fraction(bid + ask, 2)
        values["microprice.mid"] = floor_at(mid, 2)
        weights = Fraction(ask_size, bid_size + ask_size)
        values["microprice.microprice"] = floor_at(
            bid * weights + ask * (1 - weights), PRICE_SUBUNITS
        )
        values["spread.spread"] = ask - bid
        values["spread.relative_spread"] = floor_at((ask - bid) / mid, RATIO)
    for depth in settings.slope_depths:
        bids, asks = book.top_bids(depth), book.top_asks(depth)
        if len(bids) < depth or len(asks) < depth:
            values[f"depth_slope.bid_slope_{depth}"] = None
            values[f"depth_slope.ask_slope_{depth}"] = None
            continue
        mid = Fraction(bids[0][0] + asks[0][0], 2)
        values[f"depth_slope.bid_slope_{depth}"] = floor_at(
            sum(size for _, size in bids) / (mid - bids[-1][0]), SLOPE
        )
        values[f"depth_slope.ask_slope_{depth}"] = floor_at(
            sum(size for _, size in asks) / (asks[-1][0] - mid), SLOPE
        )
    return values


def ofi_contribution(before: tuple[int, int, int, int], after: tuple[int, int, int, int]) -> int:
    """Cont, Kukanov & Stoikov (2014), eq. (2), written with its indicator functions."""
    bid0, bid_size0, ask0, ask_size0 = before
    bid1, bid_size1, ask1, ask_size1 = after
    indicator = int
    return (
        indicator(bid1 >= bid0) * bid_size1
        - indicator(bid1 <= bid0) * bid_size0
        - indicator(ask1 <= ask0) * ask_size1
        + indicator(ask1 >= ask0) * ask_size0
    )


def ofi_value(tops: Sequence[tuple[int, int, int, int]], window: int) -> int | None:
    """Sum the contributions of the last ``window`` consecutive pairs of top-of-book states."""
    if len(tops) < window + 1:
        return None
    return sum(ofi_contribution(tops[n - 1], tops[n]) for n in range(len(tops) - window, len(tops)))


# -- trades ---------------------------------------------------------------------


def trade_values(trades: Sequence[Trade], settings: Settings) -> dict[str, Any]:
    """The trade-flow and VWAP columns after ``trades`` (all trades so far)."""
    values: dict[str, Any] = {
        "trade_flow.net_volume": None,
        "trade_flow.imbalance": None,
        "vwap_deviation.vwap": None,
        "vwap_deviation.deviation": None,
    }
    sign = {AggressorSide.BUY: 1, AggressorSide.SELL: -1, AggressorSide.UNKNOWN: 0}
    if len(trades) >= settings.trade_window:
        window = trades[-settings.trade_window :]
        net = sum(sign[t.aggressor] * t.size for t in window)
        volume = sum(t.size for t in window)
        values["trade_flow.net_volume"] = net
        values["trade_flow.imbalance"] = floor_at(Fraction(net, volume), RATIO) if volume else 0
    if len(trades) >= settings.vwap_window:
        window = trades[-settings.vwap_window :]
        notional = sum(t.price * t.size for t in window)
        volume = sum(t.size for t in window)
        if notional:
            vwap = Fraction(notional, volume)
            values["vwap_deviation.vwap"] = floor_at(vwap, PRICE_SUBUNITS)
            values["vwap_deviation.deviation"] = floor_at((window[-1].price - vwap) / vwap, RATIO)
    return values


def bars_from_trades(trades: Iterable[Trade], interval_ns: int) -> list[tuple[int, Bar]]:
    """Group trades into bars by interval; return ``(index of the completing trade, bar)``.

    A trade stamped inside an interval that already closed joins the open bar.
    """
    bars: list[tuple[int, Bar]] = []
    group: list[Trade] = []
    group_start = None
    for index, trade in enumerate(trades):
        start = trade.ts_event // interval_ns * interval_ns
        if group and group_start is not None and start > group_start:
            bars.append((index, make_bar(group, group_start, interval_ns)))
            group = []
        if not group:
            group_start = start
        group.append(trade)
    return bars


def make_bar(trades: Sequence[Trade], start: int, interval_ns: int) -> Bar:
    prices = [t.price for t in trades]
    return Bar(
        trades[0].venue,
        trades[0].symbol,
        interval_ns,
        prices[0],
        max(prices),
        min(prices),
        prices[-1],
        sum(t.size for t in trades),
        start,
    )


# -- bars -------------------------------------------------------------------------


def ema_series(values: Sequence[Decimal], period: int) -> list[Decimal | None]:
    """EMA with α = 2/(period+1), seeded with the mean of the first ``period`` values."""
    with decimal.localcontext(PRECISION):
        alpha = Decimal(2) / Decimal(period + 1)
        series: list[Decimal | None] = []
        ema: Decimal | None = None
        for index, value in enumerate(values):
            if index + 1 < period:
                series.append(None)
                continue
            if index + 1 == period:
                ema = sum(values[:period], Decimal(0)) / period
            else:
                assert ema is not None
                ema = alpha * value + (1 - alpha) * ema
            series.append(ema)
        return series


def wilder_series(values: Sequence[Decimal], period: int) -> list[Decimal | None]:
    """Wilder's smoothing: mean of the first ``period``, then ``(prev·(n−1) + x) / n``."""
    with decimal.localcontext(PRECISION):
        series: list[Decimal | None] = []
        average: Decimal | None = None
        for index, value in enumerate(values):
            if index + 1 < period:
                series.append(None)
                continue
            if index + 1 == period:
                average = sum(values[:period], Decimal(0)) / period
            else:
                assert average is not None
                average = (average * (period - 1) + value) / period
            series.append(average)
        return series


def bar_values(bars: Sequence[Bar], settings: Settings) -> dict[str, Any]:
    """Every bar column after ``bars`` (all bars so far), from scratch."""
    values: dict[str, Any] = {}
    closes = [Decimal(bar.close) for bar in bars]
    with decimal.localcontext(PRECISION):
        ema = ema_series(closes, settings.ema_period)
        values["ema.ema"] = ema[-1] if ema else None

        changes = [closes[i] - closes[i - 1] for i in range(1, len(closes))]
        gains = wilder_series([max(c, Decimal(0)) for c in changes], settings.rsi_period)
        losses = wilder_series([max(-c, Decimal(0)) for c in changes], settings.rsi_period)
        rsi = None
        if gains and gains[-1] is not None and losses[-1] is not None:
            gain, loss = gains[-1], losses[-1]
            if loss == 0:
                rsi = Decimal(50) if gain == 0 else Decimal(100)
            else:
                rsi = 100 - 100 / (1 + gain / loss)
        values["rsi.rsi"] = rsi

        fast, slow, signal_period = settings.macd
        fast_ema = ema_series(closes, fast)
        slow_ema = ema_series(closes, slow)
        macd_line = [
            f - s
            for f, s in zip(fast_ema, slow_ema, strict=True)
            if s is not None and f is not None
        ]
        signal = ema_series(macd_line, signal_period)
        values["macd.macd"] = macd_line[-1] if macd_line else None
        values["macd.signal"] = signal[-1] if signal else None
        values["macd.histogram"] = (
            macd_line[-1] - signal[-1] if signal and signal[-1] is not None else None
        )

        true_ranges = [
            bar.high - bar.low
            if index == 0
            else max(
                bar.high - bar.low,
                abs(bar.high - bars[index - 1].close),
                abs(bar.low - bars[index - 1].close),
            )
            for index, bar in enumerate(bars)
        ]
        atr = wilder_series([Decimal(tr) for tr in true_ranges], settings.atr_period)
        values["atr.true_range"] = true_ranges[-1] if true_ranges else None
        values["atr.atr"] = atr[-1] if atr else None

        period = settings.bollinger_period
        if len(bars) >= period:
            window = [Fraction(bar.close) for bar in bars[-period:]]
            mean = sum(window, Fraction(0)) / period
            variance = sum(((x - mean) ** 2 for x in window), Fraction(0)) / period
            deviation = (Decimal(variance.numerator) / Decimal(variance.denominator)).sqrt()
            middle = Decimal(mean.numerator) / Decimal(mean.denominator)
            width = Decimal(settings.bollinger_width)
            values["bollinger.middle"] = middle
            values["bollinger.upper"] = middle + width * deviation
            values["bollinger.lower"] = middle - width * deviation
        else:
            values["bollinger.middle"] = values["bollinger.upper"] = values["bollinger.lower"] = (
                None
            )

        window_size = settings.volatility_window
        if len(bars) >= window_size:
            window_bars = bars[-window_size:]
            ln2 = Decimal(2).ln()
            range_terms = [(Decimal(b.high) / Decimal(b.low)).ln() ** 2 for b in window_bars]
            body_terms = [(Decimal(b.close) / Decimal(b.open)).ln() ** 2 for b in window_bars]
            parkinson = sum(range_terms, Decimal(0)) / (4 * window_size * ln2)
            values["parkinson.volatility"] = parkinson.sqrt()
            garman_klass = (
                sum(
                    (
                        r / 2 - (2 * ln2 - 1) * b
                        for r, b in zip(range_terms, body_terms, strict=True)
                    ),
                    Decimal(0),
                )
                / window_size
            )
            values["garman_klass.volatility"] = max(garman_klass, Decimal(0)).sqrt()
        else:
            values["parkinson.volatility"] = values["garman_klass.volatility"] = None
    return values


# -- the whole event sequence ----------------------------------------------------------


def reference_rows(
    events: Sequence[MarketEvent], settings: Settings
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return, per instrument, every column after each book, trade or bar event."""
    trades_of: dict[tuple[str, str], list[Trade]] = {}
    for event in events:
        if isinstance(event, Trade):
            trades_of.setdefault((event.venue, event.symbol), []).append(event)
    trade_bars = {
        key: bars_from_trades(trades, settings.bar_interval_ns) if settings.bar_interval_ns else []
        for key, trades in trades_of.items()
    }
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        key = (event.venue, event.symbol)
        entry = state.setdefault(
            key,
            {"book_state": Book(), "book": None, "tops": [], "trades": [], "bars": [], "cache": {}},
        )
        if isinstance(event, BookStatus):
            if event.state is not BookState.VALID:
                entry["book_state"] = Book()
                entry["tops"] = []
                entry["book"] = None
            continue
        if isinstance(event, BookDelta | BookSnapshot):
            book: Book = entry["book_state"]
            book.apply(event)
            best_bids, best_asks = book.top_bids(1), book.top_asks(1)
            if best_bids and best_asks:
                entry["tops"].append((*best_bids[0], *best_asks[0]))
            else:
                entry["tops"] = []
            entry["book"] = book_values(book, settings)
            entry["book"]["ofi.ofi"] = ofi_value(entry["tops"], settings.ofi_window)
        elif isinstance(event, Trade):
            entry["trades"].append(event)
            # The bars this trade's arrival has completed (it may open the next one).
            last_trade = len(entry["trades"]) - 1
            entry["bars"] = [bar for index, bar in trade_bars[key] if index <= last_trade]
        elif isinstance(event, Bar):
            entry["bars"].append(event)
        else:
            continue
        row: dict[str, Any] = dict(entry["book"] or _empty_book(settings))
        row.update(trade_values(entry["trades"], settings))
        count = len(entry["bars"])
        cache = entry["cache"]
        if count not in cache:
            cache[count] = bar_values(entry["bars"], settings)
        row.update(cache[count])
        rows.setdefault(key, []).append(row)
    return rows


def _empty_book(settings: Settings) -> dict[str, Any]:
    values = book_values(Book(), settings)
    values["ofi.ofi"] = None
    return values
