"""Trade features: signed trade flow and the deviation of the last price from the VWAP.

Both keep the last ``window`` trades and running sums, so an update is O(1);
every value is exact (integers at a stated scale, floored).
"""

from __future__ import annotations

from collections import deque

from tradekernel_models.features.book import PRICE_SUBUNITS
from tradekernel_sdk.features import (
    RATIO_SCALE,
    EventKind,
    Feature,
    FeatureParamsError,
    Output,
    aggressor_sign,
)
from tradekernel_sdk.types import Trade

__all__ = ["SignedTradeFlow", "VwapDeviation"]

_TRADE = frozenset({EventKind.TRADE})


class _WindowParams(Feature.Params, frozen=True):
    window: int = 100
    """Number of most recent trades the sums cover."""


def _check_window(name: str, window: int) -> None:
    if window < 1:
        raise FeatureParamsError(f"feature {name!r}: window must be positive")


class SignedTradeFlow(Feature):
    """Net aggressor volume of the last ``window`` trades.

    ``net_volume = Σ s_i · q_i`` with ``s_i`` = +1 for a buyer-initiated trade,
    −1 for seller-initiated, 0 when the venue does not say (the signed order
    flow of Hasbrouck, "Measuring the information content of stock trades",
    Journal of Finance, 1991, and Kyle 1985, with the venue's aggressor flag in
    place of the Lee–Ready rule); fixed-point size units, exact.
    ``imbalance = net_volume / Σ q_i`` in [-1, 1], scale
    :data:`~tradekernel_sdk.features.RATIO_SCALE`, floored. Undefined until
    ``window`` trades have been seen.
    """

    name = "trade_flow"
    version = 1
    inputs = _TRADE

    class Params(_WindowParams, frozen=True):
        pass

    params: Params

    def check_params(self) -> None:
        _check_window(self.name, self.params.window)

    def describe(self) -> tuple[Output, ...]:
        return (
            Output("net_volume", 1, unit="size"),
            Output("imbalance", RATIO_SCALE, unit="ratio"),
        )

    def reset(self) -> None:
        super().reset()
        self._trades: deque[tuple[int, int]] = deque()  # (signed size, size)
        self._signed = 0
        self._volume = 0

    def on_trade(self, trade: Trade) -> None:
        signed = aggressor_sign(trade.aggressor) * trade.size
        trades = self._trades
        trades.append((signed, trade.size))
        self._signed += signed
        self._volume += trade.size
        if len(trades) > self.params.window:
            old_signed, old_size = trades.popleft()
            self._signed -= old_signed
            self._volume -= old_size
        if len(trades) == self.params.window:
            imbalance = self._signed * RATIO_SCALE // self._volume if self._volume else 0
            self.values = (self._signed, imbalance)


class VwapDeviation(Feature):
    """The VWAP of the last ``window`` trades, and the last price's gap to it.

    ``vwap = Σ p_i q_i / Σ q_i`` (Berkowitz, Logue & Noser, "The total cost of
    transactions on the NYSE", Journal of Finance, 1988) in fixed-point price
    units at scale :data:`~tradekernel_models.features.book.PRICE_SUBUNITS`;
    ``deviation = (p_last − vwap) / vwap`` at scale
    :data:`~tradekernel_sdk.features.RATIO_SCALE`; both floored, from exact
    integer sums. Undefined until ``window`` trades have been seen.
    """

    name = "vwap_deviation"
    version = 1
    inputs = _TRADE

    class Params(_WindowParams, frozen=True):
        pass

    params: Params

    def check_params(self) -> None:
        _check_window(self.name, self.params.window)

    def describe(self) -> tuple[Output, ...]:
        return (
            Output("vwap", PRICE_SUBUNITS, unit="price"),
            Output("deviation", RATIO_SCALE, unit="ratio"),
        )

    def reset(self) -> None:
        super().reset()
        self._trades: deque[tuple[int, int]] = deque()  # (price × size, size)
        self._notional = 0
        self._volume = 0

    def on_trade(self, trade: Trade) -> None:
        notional = trade.price * trade.size
        trades = self._trades
        trades.append((notional, trade.size))
        self._notional += notional
        self._volume += trade.size
        if len(trades) > self.params.window:
            old_notional, old_size = trades.popleft()
            self._notional -= old_notional
            self._volume -= old_size
        if len(trades) < self.params.window:
            return
        if not self._notional:
            self.values = (None, None)  # only zero-size or zero-price trades in the window
        else:
            # (p − N/V) / (N/V) = (p·V − N) / N, all integers.
            self.values = (
                self._notional * PRICE_SUBUNITS // self._volume,
                (trade.price * self._volume - self._notional) * RATIO_SCALE // self._notional,
            )
