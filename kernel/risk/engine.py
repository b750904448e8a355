"""The pre-trade risk engine: every order intent passes :meth:`RiskEngine.check` first.

Checks run in a fixed order and the first failure wins (``docs/risk.md`` has
the table):

1. trading halted                 ``TRADING_HALTED``
2. instrument known               ``INSTRUMENT_UNKNOWN``
3. order fields consistent        ``INVALID_ORDER``
4. book VALID                     ``BOOK_INVALID``
5. price on tick, quantity on lot ``PRICE_NOT_ON_TICK``, ``QUANTITY_NOT_ON_LOT``
6. reference price available      ``NO_REFERENCE_PRICE``
7. price band around mid          ``PRICE_BAND``
8. order notional bounds          ``NOTIONAL_BELOW_MIN``, ``NOTIONAL_ABOVE_MAX``
9. working orders per instrument  ``MAX_OPEN_ORDERS_INSTRUMENT``
10. working orders per venue      ``MAX_OPEN_ORDERS_VENUE``
11. self-trade prevention         ``SELF_TRADE``
12. reduce-only state             ``TRADING_REDUCING``
13. max position                  ``MAX_POSITION``
14. max gross exposure            ``MAX_GROSS_EXPOSURE``
15. custom checks, in registration order ``CUSTOM_CHECK``, ``CUSTOM_CHECK_ERROR``
16. order rate per venue          ``ORDER_RATE`` (last, so only approved orders use tokens)

An exception anywhere else (a bug in the context, say) denies the order with
``CHECK_ERROR``: the engine fails closed and never raises from ``check``.

The engine also holds the trading state (ACTIVE, REDUCING, HALTED) and the
kill switch: :meth:`RiskEngine.on_pnl` and :meth:`RiskEngine.evaluate` halt
trading on a daily-loss or drawdown breach and call ``on_halt``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kernel.bus import Bus, topics
from kernel.risk.checks import (
    check_book,
    check_gross_exposure,
    check_lot,
    check_notional,
    check_open_orders_instrument,
    check_open_orders_venue,
    check_order_fields,
    check_position,
    check_price_band,
    check_reducing,
    check_self_trade,
    check_tick,
    format_amount,
    is_reducing,
    same_side_leaves,
)
from kernel.risk.config import NOTIONAL_PRECISION, ResolvedLimits, RiskConfig, decimal_to_fixed
from kernel.risk.context import OpenOrderView, RiskContext
from kernel.risk.messages import (
    APPROVED,
    DenialReason,
    OrderDenied,
    RiskDecision,
    TradingState,
    TradingStateChanged,
)
from kernel.risk.ratelimit import TokenBucket
from tradekernel_sdk.orders import CancelRequest, OrderRequest, OrderSide, OrderType
from tradekernel_sdk.types import Instrument

__all__ = ["RISK_EVENTS_TOPIC", "CustomCheck", "RiskEngine"]

log = logging.getLogger(__name__)

RISK_EVENTS_TOPIC = topics.RISK_EVENTS
"""Bus topic of :class:`OrderDenied` and :class:`TradingStateChanged` events."""

CustomCheck = Callable[[OrderRequest, RiskContext], RiskDecision | None]
"""A plug-in check: return None (or an approval) to pass, a denial to deny."""

_ACTIVE = TradingState.ACTIVE
_REDUCING = TradingState.REDUCING
_HALTED = TradingState.HALTED
_BUY = OrderSide.BUY
_MARKET = OrderType.MARKET
_NO_ORDERS: tuple[OpenOrderView, ...] = ()


class RiskEngine:
    """Check order intents against :class:`RiskConfig` limits and the live :class:`RiskContext`.

    ``clock`` returns nanoseconds (rate limits and event timestamps use it and
    nothing else). ``on_halt(reason)`` is called on every change to HALTED,
    after the state has changed: the order manager cancels everything there.
    With a ``bus``, denials and state changes are published on ``events.risk``.
    """

    def __init__(
        self,
        config: RiskConfig,
        context: RiskContext,
        *,
        clock: Callable[[], int],
        on_halt: Callable[[str], None] | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self._clock = clock
        self._on_halt = on_halt
        self._bus = bus
        self._state = _ACTIVE
        self._state_reason = "start"
        self._limits: dict[str, dict[str, ResolvedLimits]] = {}
        self._buckets: dict[str, TokenBucket | None] = {}
        self._custom: tuple[tuple[str, CustomCheck], ...] = ()
        self._use_limits(config)
        self._equity_peak: int | None = None
        self.approvals = 0
        """Orders approved."""
        self.denials: dict[DenialReason, int] = dict.fromkeys(DenialReason, 0)
        """Orders denied, by reason."""
        self.check_errors: dict[str, int] = {}
        """Exceptions raised by each custom check (each one also denied its order)."""
        self.cancels = 0
        """Cancels passed (always allowed)."""
        self.errors = 0
        """Exceptions raised by built-in checks or the context (each denied its order)."""

    def replace_config(self, config: RiskConfig) -> None:
        """Enforce ``config`` from the next check on; order-rate buckets restart full."""
        self.config = config
        self._use_limits(config)

    def _use_limits(self, config: RiskConfig) -> None:
        self._limits.clear()
        self._buckets.clear()
        self._max_open_venue = config.max_open_orders_per_venue
        self._self_trade = config.self_trade_prevention
        self._daily_loss = (
            None
            if config.max_daily_loss is None
            else decimal_to_fixed(config.max_daily_loss, NOTIONAL_PRECISION)
        )
        self._drawdown = (
            None
            if config.max_drawdown is None
            else decimal_to_fixed(config.max_drawdown, NOTIONAL_PRECISION)
        )
        self._drawdown_bps = config.max_drawdown_bps

    # -- trading state -------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """Return the trading state."""
        return self._state

    @property
    def state_reason(self) -> str:
        """Return why the engine is in its state."""
        return self._state_reason

    def halt(self, reason: str) -> None:
        """Deny every new order from now on and call ``on_halt`` (the kill switch)."""
        self._change(_HALTED, reason)

    def reduce(self, reason: str) -> None:
        """Allow only orders that reduce their instrument's position."""
        self._change(_REDUCING, reason)

    def resume(self, reason: str = "resumed by operator") -> None:
        """Return to ACTIVE trading."""
        self._change(_ACTIVE, reason)

    def _change(self, state: TradingState, reason: str) -> None:
        previous = self._state
        if state is previous:
            return
        self._state = state
        self._state_reason = reason
        log_level = logging.INFO if state is _ACTIVE else logging.WARNING
        log.log(log_level, "trading state %s -> %s: %s", previous.value, state.value, reason)
        if self._bus is not None:
            event = TradingStateChanged(previous, state, reason, self._clock())
            self._bus.publish(RISK_EVENTS_TOPIC, event)
        if state is _HALTED and self._on_halt is not None:
            self._on_halt(reason)

    # -- loss limits ---------------------------------------------------------

    def on_pnl(self, realised_today: int, equity: int) -> None:
        """Take new P&L figures (``10**-8`` quote) and halt on a loss-limit breach."""
        peak = self._equity_peak
        if peak is None or equity > peak:
            self._equity_peak = peak = equity
        self._evaluate(realised_today, equity, peak)

    def evaluate(self) -> None:
        """Read P&L and equity from the context and halt on a loss-limit breach."""
        context = self.context
        equity = context.equity()
        peak = max(context.equity_peak(), equity)
        if self._equity_peak is None or peak > self._equity_peak:
            self._equity_peak = peak
        self._evaluate(context.realised_pnl_today(), equity, self._equity_peak)

    def _evaluate(self, realised_today: int, equity: int, peak: int) -> None:
        if self._state is _HALTED:
            return
        reason = self._loss_breach(realised_today, equity, peak)
        if reason is not None:
            self._change(_HALTED, reason)

    def _loss_breach(self, realised_today: int, equity: int, peak: int) -> str | None:
        limit = self._daily_loss
        if limit is not None and -realised_today > limit:
            return f"daily loss {_amount(-realised_today)} is above max_daily_loss {_amount(limit)}"
        drawdown = peak - equity
        limit = self._drawdown
        if limit is not None and drawdown > limit:
            return (
                f"drawdown {_amount(drawdown)} from peak {_amount(peak)} is above "
                f"max_drawdown {_amount(limit)}"
            )
        bps = self._drawdown_bps
        if bps is not None and peak > 0 and drawdown * 10_000 > bps * peak:
            return (
                f"drawdown {_amount(drawdown)} from peak {_amount(peak)} is "
                f"{drawdown * 10_000 / peak:.1f} bps, above max_drawdown_bps {bps}"
            )
        return None

    # -- custom checks -------------------------------------------------------

    def register_check(self, name: str, check: CustomCheck) -> None:
        """Run ``check`` on every order after the built-in checks, before the rate limit.

        A check that raises is logged, counted in :attr:`check_errors` and
        denies the order with ``CUSTOM_CHECK_ERROR`` (fail closed).
        """
        if any(existing == name for existing, _ in self._custom):
            raise ValueError(f"a custom risk check named {name!r} is already registered")
        self._custom = (*self._custom, (name, check))
        self.check_errors.setdefault(name, 0)

    def unregister_check(self, name: str) -> None:
        """Remove the custom check ``name``."""
        remaining = tuple(item for item in self._custom if item[0] != name)
        if len(remaining) == len(self._custom):
            raise ValueError(f"no custom risk check named {name!r}")
        self._custom = remaining

    @property
    def custom_checks(self) -> list[str]:
        """Return the names of the custom checks, in the order they run."""
        return [name for name, _ in self._custom]

    # -- checking ------------------------------------------------------------

    def check_cancel(self, request: CancelRequest) -> RiskDecision:
        """Approve a cancel: cancels are allowed in every state."""
        self.cancels += 1
        return APPROVED

    def check(self, request: OrderRequest) -> RiskDecision:
        """Approve or deny one order intent; the first failing check wins.

        Never raises: an exception from a check or the context is logged,
        counted in :attr:`errors` and denies the order with ``CHECK_ERROR``.
        """
        try:
            return self._check(request)
        except Exception as error:
            self.errors += 1
            log.exception("risk check failed on %s", request.client_order_id)
            return self._deny(
                request,
                RiskDecision.deny(
                    DenialReason.CHECK_ERROR,
                    f"risk check raised {type(error).__name__}: {error}",
                ),
            )

    def _check(self, request: OrderRequest) -> RiskDecision:
        state = self._state
        if state is _HALTED:
            return self._deny(
                request,
                RiskDecision.deny(
                    DenialReason.TRADING_HALTED, f"trading is halted: {self._state_reason}"
                ),
            )
        venue = request.venue
        symbol = request.symbol
        context = self.context
        instrument = context.instrument(venue, symbol)
        if instrument is None:
            return self._deny(
                request,
                RiskDecision.deny(
                    DenialReason.INSTRUMENT_UNKNOWN, f"instrument {venue}.{symbol} is not known"
                ),
            )
        limits = self._resolved(venue, symbol, instrument)

        denial = check_order_fields(request, instrument)
        if denial is not None:
            return self._deny(request, denial)
        book = context.book(venue, symbol)
        denial = check_book(context.book_state(venue, symbol), book is not None, instrument)
        if denial is not None or book is None:
            return self._deny(request, denial or _NO_BOOK)
        denial = check_tick(request, instrument) or check_lot(request, instrument)
        if denial is not None:
            return self._deny(request, denial)

        # Reference price: the limit price, or the best price a market order would take.
        band = limits.price_band_bps
        max_gross = limits.max_gross_exposure_scaled
        mid_x2 = book.mid_price_x2() if band is not None or max_gross is not None else None
        if request.order_type is _MARKET:
            price = book.best_ask_price() if request.side is _BUY else book.best_bid_price()
            if price is None:
                return self._deny(
                    request,
                    RiskDecision.deny(
                        DenialReason.NO_REFERENCE_PRICE,
                        f"no {'ask' if request.side is _BUY else 'bid'} in the book of "
                        f"{instrument.key} to price a market order",
                    ),
                )
        else:
            price = request.price or 0
        if band is not None:
            if mid_x2 is None:
                return self._deny(
                    request,
                    RiskDecision.deny(
                        DenialReason.NO_REFERENCE_PRICE,
                        f"no mid in the book of {instrument.key} for the price band",
                    ),
                )
            denial = check_price_band(request, price, mid_x2, band, instrument)
            if denial is not None:
                return self._deny(request, denial)
        if (
            limits.min_order_notional_scaled is not None
            or limits.max_order_notional_scaled is not None
        ):
            denial = check_notional(request, price, limits)
            if denial is not None:
                return self._deny(request, denial)

        # Working orders on the instrument and on the venue.
        max_position = limits.max_position
        max_open = limits.max_open_orders
        self_trade = self._self_trade
        needs_position = max_position is not None or max_gross is not None or state is _REDUCING
        if self_trade or max_open is not None or needs_position:
            orders = context.open_orders(venue, symbol)
        else:
            orders = _NO_ORDERS
        if max_open is not None:
            denial = check_open_orders_instrument(len(orders), max_open, instrument)
            if denial is not None:
                return self._deny(request, denial)
        max_open_venue = self._max_open_venue
        if max_open_venue is not None:
            denial = check_open_orders_venue(
                len(context.open_orders(venue, None)), max_open_venue, venue
            )
            if denial is not None:
                return self._deny(request, denial)
        if self_trade:
            denial = check_self_trade(request, orders, instrument)
            if denial is not None:
                return self._deny(request, denial)

        # Position: reduce-only state, max position, gross exposure.
        if needs_position:
            side = request.side
            position = context.position(venue, symbol)
            same_side = same_side_leaves(orders, side)
            reducing = is_reducing(side, request.quantity, position, same_side)
            if state is _REDUCING:
                denial = check_reducing(
                    request,
                    state=state,
                    reducing=reducing,
                    position=position,
                    same_side=same_side,
                    instrument=instrument,
                )
                if denial is not None:
                    return self._deny(request, denial)
            if max_position is not None:
                denial = check_position(
                    request,
                    position=position,
                    same_side=same_side,
                    reducing=reducing,
                    max_position=max_position,
                    instrument=instrument,
                )
                if denial is not None:
                    return self._deny(request, denial)
            if max_gross is not None:
                # Positions are marked at mid: value the order at no less than the mid.
                value_price = price if mid_x2 is None else max(price, (mid_x2 + 1) >> 1)
                denial = check_gross_exposure(
                    request,
                    value_price=value_price,
                    gross_exposure=context.gross_exposure(),
                    reducing=reducing,
                    limits=limits,
                )
                if denial is not None:
                    return self._deny(request, denial)

        for name, custom in self._custom:
            try:
                decision = custom(request, context)
                denied = decision is not None and not decision.approved
            except Exception as error:
                self.check_errors[name] = self.check_errors.get(name, 0) + 1
                log.exception("custom risk check %r failed on %s", name, request.client_order_id)
                return self._deny(
                    request,
                    RiskDecision.deny(
                        DenialReason.CUSTOM_CHECK_ERROR,
                        f"custom check {name!r} raised {type(error).__name__}: {error}",
                    ),
                )
            if denied and decision is not None:
                return self._deny(
                    request,
                    RiskDecision.deny(
                        decision.reason or DenialReason.CUSTOM_CHECK, f"{name}: {decision.detail}"
                    ),
                )

        bucket = self._bucket(venue)
        if bucket is not None:
            now = self._clock()
            if not bucket.try_take(now):
                return self._deny(
                    request,
                    RiskDecision.deny(
                        DenialReason.ORDER_RATE,
                        f"order rate on {venue} above {bucket.rate_per_s} per second "
                        f"(burst {bucket.burst}); next token in {bucket.wait_ns(now)} ns",
                    ),
                )
        self.approvals += 1
        return APPROVED

    def _deny(self, request: OrderRequest, decision: RiskDecision) -> RiskDecision:
        reason = decision.reason or DenialReason.CUSTOM_CHECK
        self.denials[reason] += 1
        log.debug(
            "denied %s (%s.%s): %s %s",
            request.client_order_id,
            request.venue,
            request.symbol,
            reason.value,
            decision.detail,
        )
        bus = self._bus
        if bus is not None:
            bus.publish(
                RISK_EVENTS_TOPIC,
                OrderDenied(
                    request.client_order_id,
                    request.venue,
                    request.symbol,
                    reason,
                    decision.detail,
                    self._clock(),
                ),
            )
        return decision

    def _resolved(self, venue: str, symbol: str, instrument: Instrument) -> ResolvedLimits:
        by_symbol = self._limits.get(venue)
        if by_symbol is None:
            by_symbol = self._limits[venue] = {}
        limits = by_symbol.get(symbol)
        if limits is None or (
            limits.instrument is not instrument and limits.instrument != instrument
        ):
            limits = by_symbol[symbol] = self.config.limits_for(instrument)
        return limits

    def _bucket(self, venue: str) -> TokenBucket | None:
        try:
            return self._buckets[venue]
        except KeyError:
            rate = self.config.rate_for(venue)
            bucket = (
                None if rate is None else TokenBucket(rate.rate_per_s, rate.burst, self._clock())
            )
            self._buckets[venue] = bucket
            return bucket


_NO_BOOK = RiskDecision.deny(DenialReason.BOOK_INVALID, "no book")


def _amount(value: int) -> str:
    return format_amount(value, NOTIONAL_PRECISION)
