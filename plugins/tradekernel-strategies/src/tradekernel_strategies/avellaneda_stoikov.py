"""Market making with inventory control after Avellaneda and Stoikov.

Avellaneda and Stoikov, "High-frequency trading in a limit order book",
Quantitative Finance 8(3), 2008, pp. 217-224, give a dealer with inventory
``q``, risk aversion ``gamma``, mid price ``s`` following a Brownian motion of
volatility ``sigma``, and market orders reaching a quote ``delta`` away from
the mid at intensity ``A * exp(-kappa * delta)``, the reservation
(indifference) price

    r = s - q * gamma * sigma^2 * (T - t)

and, in their approximation of the optimal quotes, the total spread between
bid and ask

    delta = gamma * sigma^2 * (T - t) + (2 / gamma) * ln(1 + gamma / kappa),

and quote the bid at ``r - delta / 2`` and the ask at ``r + delta / 2``.

As implemented here:

* Prices in the formulas are in **ticks** of the instrument: ``s`` is the mid
  ``(best bid + best ask) / 2`` divided by ``tick``; ``delta`` and ``r`` come
  out in ticks.
* ``q`` is the position in **lots**: ``context.position(...) / lot`` (size
  units over the size increment), so one BTCUSDT lot is 0.00001 BTC.
* ``sigma^2`` is in **ticks^2 per second**: an exponentially weighted mean of
  ``(change of mid)^2 / (seconds between observations)`` over the mid's
  changes, with time constant ``vol_window_ns`` and the bias of a young
  estimate removed (see :class:`MidVariance`).
* ``T - t`` is a rolling horizon, the constant ``horizon_ns`` in **seconds**.
* So ``gamma`` is per tick per lot (``q * gamma * sigma^2 * (T - t)`` is in
  ticks) and ``kappa`` per tick.

The bid is rounded down and the ask up to whole ticks, and both are kept off
the opposite touch: the bid at most one tick below the best ask, the ask at
least one tick above the best bid; orders are post-only. A side is not quoted
when a fill there would take ``|position|`` beyond ``max_inventory`` (its size
is capped by the room left), nor the ask below zero inventory unless
``allow_short``. A quote is replaced when the model's price for its side moves
``requote_ticks`` or more away, when a timer every ``requote_interval_ns``
finds it a tick or more away, or when the inventory room shrinks below it: the
stale quote is cancelled first and its replacement is placed only once the
venue confirms it is gone (at once from the context's live book, else at the
next book update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradekernel_sdk import BookView, Strategy, StrategyContext
from tradekernel_sdk.orders import OrderSide, TimeInForce
from tradekernel_sdk.types import BookDelta, BookSnapshot
from tradekernel_strategies.common import (
    NS_PER_SECOND,
    InstrumentConfig,
    InstrumentStrategy,
    OrderEnd,
    WorkingOrder,
    ceil_to_tick,
    floor_to_lot,
    floor_to_tick,
)

__all__ = ["REQUOTE_TIMER", "AvellanedaStoikov", "MidVariance", "QuotePlan"]

REQUOTE_TIMER = "avellaneda_stoikov.requote"
"""Name of the strategy's periodic requote timer."""


class MidVariance:
    """Estimate the variance rate of a price path from its changes (units^2 per second).

    Each observation after the first contributes the sample
    ``(change)^2 / dt`` (``dt`` in seconds), which for a Brownian path has the
    variance rate as its mean; samples are averaged with the weight
    ``1 - exp(-dt / window)`` against ``exp(-dt / window)`` for the past, and
    the estimate is divided by the total weight so far, so a young estimate is
    not biased towards zero. Observations at the same or an earlier time are
    skipped; their change is counted by the next later one.
    """

    def __init__(self, window_ns: int) -> None:
        """Start with no observation; ``window_ns`` is the averaging time constant."""
        if window_ns <= 0:
            raise ValueError(f"window_ns must be positive, got {window_ns}")
        self.window_ns = window_ns
        self._mean = 0.0
        self._weight = 0.0
        self._last: float | None = None
        self._last_ns = 0
        self.observed_ns = 0
        """Market time covered by the samples so far."""

    @property
    def variance(self) -> float:
        """Return the estimated variance per second; 0.0 before any change was seen."""
        return self._mean / self._weight if self._weight > 0.0 else 0.0

    def update(self, value: float, now: int) -> None:
        """Observe ``value`` at ``now`` (ns)."""
        if not math.isfinite(value):
            return
        last = self._last
        if last is None:
            self._last, self._last_ns = value, now
            return
        elapsed = now - self._last_ns
        if elapsed <= 0:
            return
        change = value - last
        sample = change * change * NS_PER_SECOND / elapsed
        new = -math.expm1(-elapsed / self.window_ns)
        self._mean = self._mean * (1.0 - new) + sample * new
        self._weight = self._weight * (1.0 - new) + new
        self._last, self._last_ns = value, now
        self.observed_ns += elapsed

    def restart(self) -> None:
        """Forget the last observation (the path broke) but keep the estimate."""
        self._last = None


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """One evaluation of the model: its inputs, its prices, and the quotes it leads to."""

    mid: float
    """``s``, in fixed-point price units."""
    inventory: float
    """``q``, in lots."""
    variance: float
    """``sigma^2``, in ticks^2 per second."""
    reservation: float
    """``r``, in fixed-point price units."""
    spread: float
    """``delta``, in ticks."""
    bid: int | None
    """Bid price (fixed-point, on the tick), or ``None`` when it is not quoted."""
    ask: int | None
    """Ask price (fixed-point, on the tick), or ``None`` when it is not quoted."""
    bid_size: int
    """Bid size (fixed-point, on the lot); 0 when the bid is not quoted."""
    ask_size: int
    """Ask size (fixed-point, on the lot); 0 when the ask is not quoted."""
    bid_room: int
    """How much more the strategy may buy within ``max_inventory``."""
    ask_room: int
    """How much more the strategy may sell within its short limit."""


class AvellanedaStoikov(InstrumentStrategy):
    """Quote both sides around an inventory-skewed reservation price."""

    class Config(InstrumentConfig, frozen=True, kw_only=True):
        """Model and quoting parameters (units in the module's documentation)."""

        max_inventory: int
        """Largest ``|position|``, fixed-point size units; a multiple of ``lot``."""
        gamma: float = 1e-6
        """Risk aversion, per tick per lot."""
        kappa: float = 0.05
        """Decay of the fill intensity with the distance from the mid, per tick."""
        horizon_ns: int = NS_PER_SECOND
        """The rolling ``T - t``."""
        vol_window_ns: int = 30 * NS_PER_SECOND
        """Time constant of the variance estimate."""
        warmup_ns: int = 5 * NS_PER_SECOND
        """Market time of mid changes to see before quoting."""
        requote_ticks: int = 5
        """Replace a quote when the model's price moves this many ticks from it."""
        requote_interval_ns: int = 5 * NS_PER_SECOND
        """Period of the timer that replaces quotes a tick or more off the model."""
        reject_backoff_ns: int = NS_PER_SECOND
        """Wait before quoting a side again after an order on it was rejected or denied."""
        allow_short: bool = False
        """Quote the ask below zero inventory (not possible on a spot account)."""

        def __post_init__(self) -> None:
            """Refuse parameters the model or the quoting cannot use."""
            super().__post_init__()
            if self.max_inventory <= 0 or self.max_inventory % self.lot:
                raise ValueError(
                    f"max_inventory must be a positive multiple of lot ({self.lot}), "
                    f"got {self.max_inventory}"
                )
            for name, value in (("gamma", self.gamma), ("kappa", self.kappa)):
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"{name} must be positive and finite, got {value}")
            for name, number in (
                ("horizon_ns", self.horizon_ns),
                ("vol_window_ns", self.vol_window_ns),
                ("requote_ticks", self.requote_ticks),
                ("requote_interval_ns", self.requote_interval_ns),
            ):
                if number <= 0:
                    raise ValueError(f"{name} must be positive, got {number}")
            for name, number in (
                ("warmup_ns", self.warmup_ns),
                ("reject_backoff_ns", self.reject_backoff_ns),
            ):
                if number < 0:
                    raise ValueError(f"{name} must not be negative, got {number}")

    config: Config

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Start with no estimate and no quotes."""
        super().__init__(context, config)
        self.variance = MidVariance(self.config.vol_window_ns)
        self.top: tuple[int, int] | None = None
        """The latest best bid and best ask prices."""
        self.plan: QuotePlan | None = None
        """The latest evaluation of the model."""
        self.backoff_until = {OrderSide.BUY: 0, OrderSide.SELL: 0}

    # -- the model -----------------------------------------------------------

    def evaluate(self, best_bid: int, best_ask: int) -> QuotePlan | None:
        """Return the model's quotes for this touch and the current position and estimate."""
        config = self.config
        tick = config.tick
        anchor = floor_to_tick(best_bid, tick)
        mid = (best_bid + best_ask - 2 * anchor) / (2 * tick)  # ticks above the anchor
        position = self.position()
        inventory = position / config.lot
        variance = self.variance.variance
        risk = config.gamma * variance * (config.horizon_ns / NS_PER_SECOND)
        reservation = mid - inventory * risk
        spread = risk + 2.0 / config.gamma * math.log1p(config.gamma / config.kappa)
        low, high = reservation - spread / 2, reservation + spread / 2
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        bid = min(anchor + math.floor(low) * tick, floor_to_tick(best_ask - 1, tick))
        ask = max(anchor + math.ceil(high) * tick, ceil_to_tick(best_bid + 1, tick))
        if ask <= bid:
            ask = bid + tick
        bid_room = config.max_inventory - position
        ask_room = position + (config.max_inventory if config.allow_short else 0)
        bid_size = floor_to_lot(min(config.quantity, bid_room), config.lot)
        ask_size = floor_to_lot(min(config.quantity, ask_room), config.lot)
        quote_bid = bid > 0 and bid_size > 0
        quote_ask = ask_size > 0
        return QuotePlan(
            mid=anchor + mid * tick,
            inventory=inventory,
            variance=variance,
            reservation=anchor + reservation * tick,
            spread=spread,
            bid=bid if quote_bid else None,
            ask=ask if quote_ask else None,
            bid_size=bid_size if quote_bid else 0,
            ask_size=ask_size if quote_ask else 0,
            bid_room=bid_room,
            ask_room=ask_room,
        )

    # -- quoting -------------------------------------------------------------

    def requote(self, now: int, threshold_ticks: int) -> None:
        """Bring both quotes in line with the model, cancelling those ``threshold_ticks`` off."""
        if (
            not self.book_valid
            or self.top is None
            or self.variance.observed_ns < self.config.warmup_ns
        ):
            return
        plan = self.evaluate(*self.top)
        self.plan = plan
        if plan is None:
            return
        for side, price, size, room in (
            (OrderSide.BUY, plan.bid, plan.bid_size, plan.bid_room),
            (OrderSide.SELL, plan.ask, plan.ask_size, plan.ask_room),
        ):
            self._quote_side(side, price, size, room=room, now=now, threshold=threshold_ticks)

    def _quote_side(
        self, side: OrderSide, price: int | None, size: int, *, room: int, now: int, threshold: int
    ) -> None:
        order = next((o for o in self.working.values() if o.side is side), None)
        if order is not None:
            if order.cancel_requested:
                return
            if (
                price is None
                or order.price is None
                or order.leaves > room
                or abs(order.price - price) >= threshold * self.config.tick
            ):
                self.cancel(order)
            return
        if price is None or size <= 0 or now < self.backoff_until[side]:
            return
        self.submit(
            side,
            size,
            price,
            time_in_force=TimeInForce.POST_ONLY,
            now=now,
            tag=f"avellaneda_stoikov:{side.value}",
        )

    # -- callbacks -----------------------------------------------------------

    def on_start(self) -> None:
        """Start the requote timer."""
        self.context.set_timer(REQUOTE_TIMER, self.config.requote_interval_ns)

    def handle_book(self, update: BookDelta | BookSnapshot, book: BookView, now: int) -> None:
        """Update the touch and the variance estimate, then requote."""
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None or bid[0] <= 0 or ask[0] <= bid[0]:
            self.top = None  # one side empty, or locked/crossed: no trustworthy mid
            return
        self.top = (bid[0], ask[0])
        self.variance.update((bid[0] + ask[0]) / (2 * self.config.tick), now)
        self.requote(now, self.config.requote_ticks)

    def on_timer(self, name: str, ts_ns: int) -> None:
        """Replace quotes that drifted a tick or more from the model."""
        if name != REQUOTE_TIMER or not self.book_valid:
            return
        self._refresh_top()
        self.requote(ts_ns, 1)

    def order_done(self, order: WorkingOrder, end: OrderEnd, now: int) -> None:
        """Back off a side after a rejection; otherwise replace the quote from the live book.

        A fill often arrives before the book update that caused it, so the
        replacement is placed at once only when the context has the live
        book; otherwise the next book update places it.
        """
        if end is OrderEnd.REJECTED:
            self.backoff_until[order.side] = now + self.config.reject_backoff_ns
        elif self.book_valid and self._refresh_top():
            self.requote(now, self.config.requote_ticks)

    def _refresh_top(self) -> bool:
        """Take the touch from the context's live book; return whether it had one."""
        book = self.context.book(self.config.venue, self.config.symbol)
        if book is None:
            return False
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None or not 0 < bid[0] < ask[0]:
            self.top = None
            return False
        self.top = (bid[0], ask[0])
        return True

    def book_invalidated(self) -> None:
        """Forget the touch and the last mid; the variance estimate is kept."""
        self.top = None
        self.plan = None
        self.variance.restart()

    def on_stop(self) -> None:
        """Stop the timer and cancel the quotes."""
        self.context.cancel_timer(REQUOTE_TIMER)
        super().on_stop()
