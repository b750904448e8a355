"""Bar indicators: EMA, RSI, MACD, ATR, Bollinger bands, Parkinson and Garman–Klass volatility.

These are real-valued by definition (exponential smoothing with ever-growing
denominators, square roots, logarithms), so they are floats, computed from the
exact fixed-point bar prices by the same operations in the same order every
time: live and offline values are bit-for-bit equal. Prices are in the
instrument's fixed-point price units; volatilities are per bar (not
annualised). Each update is O(1).
"""

from __future__ import annotations

import math
from collections import deque

from tradekernel_sdk.features import EventKind, Feature, FeatureParamsError, Output
from tradekernel_sdk.types import Bar

__all__ = [
    "AverageTrueRange",
    "BollingerBands",
    "ExponentialMovingAverage",
    "GarmanKlassVolatility",
    "MovingAverageConvergenceDivergence",
    "ParkinsonVolatility",
    "RelativeStrengthIndex",
]

_BAR = frozenset({EventKind.BAR})

_GARMAN_KLASS_CLOSE_WEIGHT = 2 * math.log(2) - 1


def _check_positive(name: str, **periods: int) -> None:
    for field, value in periods.items():
        if value < 1:
            raise FeatureParamsError(f"feature {name!r}: {field} must be positive")


def _real(name: str) -> Output:
    return Output(name, 1, exact=False, unit="price")


class _Ema:
    """EMA with smoothing ``2 / (period + 1)``, seeded with the mean of the first ``period``."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = 2 / (period + 1)
        self.seen = 0
        self.seed_sum: float = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is not None:
            self.value += self.alpha * (x - self.value)
            return self.value
        self.seen += 1
        self.seed_sum += x
        if self.seen == self.period:
            self.value = self.seed_sum / self.period
        return self.value


class _Wilder:
    """Wilder's smoothing: the mean of the first ``period`` inputs, then ``(m·(n−1) + x) / n``."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.seen = 0
        self.seed_sum: float = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is not None:
            self.value = (self.value * (self.period - 1) + x) / self.period
            return self.value
        self.seen += 1
        self.seed_sum += x
        if self.seen == self.period:
            self.value = self.seed_sum / self.period
        return self.value


class _RollingMean:
    """The mean of the last ``window`` floats, summed exactly.

    Every finite float is a whole number of units of 2^-1074, so each is kept
    as that integer: adding one and removing it again never rounds, a window
    of zeros sums to exactly 0, and the mean is the correctly rounded quotient
    of two integers. A running float sum would leave a residue after a large
    value leaves the window, and a square root of it (volatility) turns a
    residue of 1e-19 into 1e-10, or a negative one into an error.
    """

    _UNIT_BITS = 1074

    def __init__(self, window: int) -> None:
        self.window = window
        self.items: deque[int] = deque()
        self.total = 0
        self._divisor = window << self._UNIT_BITS

    def update(self, x: float) -> float | None:
        numerator, denominator = x.as_integer_ratio()  # the denominator is a power of two
        units = numerator << (self._UNIT_BITS + 1 - denominator.bit_length())
        items = self.items
        items.append(units)
        self.total += units
        if len(items) > self.window:
            self.total -= items.popleft()
        if len(items) < self.window:
            return None
        return self.total / self._divisor


class ExponentialMovingAverage(Feature):
    """Exponential moving average of the close, ``period`` bars.

    ``EMA_t = EMA_{t−1} + α (C_t − EMA_{t−1})`` with ``α = 2 / (period + 1)``,
    seeded with the simple mean of the first ``period`` closes (the usual
    convention, e.g. Murphy, "Technical Analysis of the Financial Markets",
    1999, ch. 9). Undefined before ``period`` bars.
    """

    name = "ema"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        period: int = 20

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, period=self.params.period)

    def describe(self) -> tuple[Output, ...]:
        return (_real("ema"),)

    def reset(self) -> None:
        super().reset()
        self._ema = _Ema(self.params.period)

    def on_bar(self, bar: Bar) -> None:
        self.values = (self._ema.update(bar.close),)


class RelativeStrengthIndex(Feature):
    """Wilder's relative strength index of the close, ``period`` bars, in [0, 100].

    Wilder, "New Concepts in Technical Trading Systems", 1978: with close
    changes ``d_t = C_t − C_{t−1}``, gains ``max(d, 0)`` and losses
    ``max(−d, 0)`` are each averaged with Wilder's smoothing (the mean of the
    first ``period``, then ``(A·(n−1) + x) / n``), and
    ``RSI = 100 − 100 / (1 + G/L) = 100 · G / (G + L)``; 50 when both are
    zero. Undefined before ``period`` changes (``period + 1`` bars).
    """

    name = "rsi"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        period: int = 14

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, period=self.params.period)

    def describe(self) -> tuple[Output, ...]:
        return (Output("rsi", 1, exact=False, unit="index"),)

    def reset(self) -> None:
        super().reset()
        self._last_close: int | None = None
        self._gains = _Wilder(self.params.period)
        self._losses = _Wilder(self.params.period)

    def on_bar(self, bar: Bar) -> None:
        last = self._last_close
        self._last_close = bar.close
        if last is None:
            return
        change = bar.close - last
        gain = self._gains.update(max(change, 0))
        loss = self._losses.update(max(-change, 0))
        if gain is None or loss is None:
            return
        total = gain + loss
        self.values = (100 * gain / total if total else 50.0,)


class MovingAverageConvergenceDivergence(Feature):
    """MACD of the close: the fast EMA minus the slow EMA, its signal line and histogram.

    Appel, "Technical Analysis: Power Tools for Active Investors", 2005:
    ``macd = EMA_fast(C) − EMA_slow(C)``, ``signal = EMA_signal(macd)``,
    ``histogram = macd − signal``; each EMA as in :class:`ExponentialMovingAverage`
    (the signal EMA is seeded from the first ``signal`` MACD values).
    """

    name = "macd"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        fast: int = 12
        slow: int = 26
        signal: int = 9

    params: Params

    def check_params(self) -> None:
        params = self.params
        _check_positive(self.name, fast=params.fast, slow=params.slow, signal=params.signal)
        if params.fast >= params.slow:
            raise FeatureParamsError(f"feature {self.name!r}: fast must be shorter than slow")

    def describe(self) -> tuple[Output, ...]:
        return (_real("macd"), _real("signal"), _real("histogram"))

    def reset(self) -> None:
        super().reset()
        self._fast = _Ema(self.params.fast)
        self._slow = _Ema(self.params.slow)
        self._signal = _Ema(self.params.signal)

    def on_bar(self, bar: Bar) -> None:
        fast = self._fast.update(bar.close)
        slow = self._slow.update(bar.close)
        if fast is None or slow is None:
            return
        macd = fast - slow
        signal = self._signal.update(macd)
        self.values = (macd, signal, None if signal is None else macd - signal)


class AverageTrueRange(Feature):
    """Wilder's average true range over ``period`` bars, and the latest true range.

    Wilder 1978: ``TR_t = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|)``
    (``H − L`` for the first bar), exact in fixed-point price units;
    ``ATR`` is TR under Wilder's smoothing (the mean of the first ``period``,
    then ``(ATR·(n−1) + TR) / n``), a float. Undefined before ``period`` bars.
    """

    name = "atr"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        period: int = 14

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, period=self.params.period)

    def describe(self) -> tuple[Output, ...]:
        return (Output("true_range", 1, unit="price"), _real("atr"))

    def reset(self) -> None:
        super().reset()
        self._last_close: int | None = None
        self._average = _Wilder(self.params.period)

    def on_bar(self, bar: Bar) -> None:
        true_range = bar.high - bar.low
        last = self._last_close
        if last is not None:
            true_range = max(true_range, abs(bar.high - last), abs(bar.low - last))
        self._last_close = bar.close
        self.values = (true_range, self._average.update(true_range))


class BollingerBands(Feature):
    """Bollinger bands of the close: the ``period``-bar mean ± ``width`` standard deviations.

    Bollinger, "Bollinger on Bollinger Bands", 2001: ``middle = SMA_n(C)``,
    ``upper/lower = middle ± width · σ_n(C)`` with the population standard
    deviation over the same ``n`` closes. The window's sums of closes and of
    squared closes are exact integers, so the variance's numerator
    ``n·Σc² − (Σc)²`` is exact; only the final division and square root are
    floating-point. Undefined before ``period`` bars.
    """

    name = "bollinger"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        period: int = 20
        width: float = 2.0

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, period=self.params.period)
        if not self.params.width > 0:
            raise FeatureParamsError(f"feature {self.name!r}: width must be positive")

    def describe(self) -> tuple[Output, ...]:
        return (_real("middle"), _real("upper"), _real("lower"))

    def reset(self) -> None:
        super().reset()
        self._closes: deque[int] = deque()
        self._sum = 0
        self._sum_squares = 0

    def on_bar(self, bar: Bar) -> None:
        closes = self._closes
        closes.append(bar.close)
        self._sum += bar.close
        self._sum_squares += bar.close * bar.close
        period = self.params.period
        if len(closes) > period:
            old = closes.popleft()
            self._sum -= old
            self._sum_squares -= old * old
        if len(closes) < period:
            return
        middle = self._sum / period
        deviation = math.sqrt(period * self._sum_squares - self._sum * self._sum) / period
        band = self.params.width * deviation
        self.values = (middle, middle + band, middle - band)


class ParkinsonVolatility(Feature):
    """Parkinson's high-low volatility estimator over the last ``window`` bars, per bar.

    Parkinson, "The extreme value method for estimating the variance of the
    rate of return", Journal of Business 53(1), 1980:
    ``σ² = (1 / (4 ln 2)) · mean(ln(H/L)²)``; the output is ``σ``. Undefined
    before ``window`` bars.
    """

    name = "parkinson"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        window: int = 20

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, window=self.params.window)

    def describe(self) -> tuple[Output, ...]:
        return (Output("volatility", 1, exact=False, unit="log-return"),)

    def reset(self) -> None:
        super().reset()
        self._mean = _RollingMean(self.params.window)

    def on_bar(self, bar: Bar) -> None:
        log_range = math.log(bar.high / bar.low)
        mean = self._mean.update(log_range * log_range)
        if mean is not None:
            self.values = (math.sqrt(mean / (4 * math.log(2))),)


class GarmanKlassVolatility(Feature):
    """Garman–Klass open-high-low-close volatility estimator over the last ``window`` bars, per bar.

    Garman & Klass, "On the estimation of security price volatilities from
    historical data", Journal of Business 53(1), 1980, the practical
    estimator: ``σ² = mean(½ ln(H/L)² − (2 ln 2 − 1) ln(C/O)²)``; the output
    is ``σ`` (0 if rounding makes the mean negative). Undefined before
    ``window`` bars.
    """

    name = "garman_klass"
    version = 1
    inputs = _BAR

    class Params(Feature.Params, frozen=True):
        window: int = 20

    params: Params

    def check_params(self) -> None:
        _check_positive(self.name, window=self.params.window)

    def describe(self) -> tuple[Output, ...]:
        return (Output("volatility", 1, exact=False, unit="log-return"),)

    def reset(self) -> None:
        super().reset()
        self._mean = _RollingMean(self.params.window)

    def on_bar(self, bar: Bar) -> None:
        log_range = math.log(bar.high / bar.low)
        log_body = math.log(bar.close / bar.open)
        term = 0.5 * log_range * log_range - _GARMAN_KLASS_CLOSE_WEIGHT * log_body * log_body
        mean = self._mean.update(term)
        if mean is not None:
            self.values = (math.sqrt(max(mean, 0.0)),)
