"""``RiskService``: the trading state, the kill switch, resuming and the limits in force.

The risk engine reads its :class:`RiskConfig` once, when it is built, and
keeps no way to swap it while running, so ``GetLimits`` always reports
revision 1 and ``UpdateLimits`` fails with FAILED_PRECONDITION: limits change
by editing the ``[risk]`` table and restarting.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeAlias

import grpc

from kernel.api.convert import amount, decimal, from_proto_enum, to_proto_enum
from kernel.api.errors import ApiError, invalid, unary
from kernel.api.parts import ApiParts
from kernel.risk import RiskEngine, TradingState
from kernel.risk.config import (
    NOTIONAL_PRECISION,
    InstrumentLimits,
    RateLimit,
    RiskConfig,
    decimal_to_fixed,
)
from tradekernel_sdk.proto.tradekernel.v1 import risk_pb2, risk_pb2_grpc, types_pb2

__all__ = ["LIMITS_REVISION", "RiskServicer", "risk_limits", "risk_state"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_MAX_REASON = 500

LIMITS_REVISION = 1
"""The revision of the limits: those of the start, never updated while running."""


def _exact(value: Decimal) -> Any:
    """Return a decimal number as a ``Decimal`` message with as many decimals as it has."""
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return decimal(decimal_to_fixed(value, places), places)


def _money(value: Decimal | None) -> Any:
    if value is None:
        return None
    return amount(decimal_to_fixed(value, NOTIONAL_PRECISION), NOTIONAL_PRECISION)


def _instrument_limits(limits: InstrumentLimits) -> risk_pb2.InstrumentLimits:
    message = risk_pb2.InstrumentLimits(
        max_position=None if limits.max_position is None else _exact(limits.max_position),
        min_order_notional=_money(limits.min_order_notional),
        max_order_notional=_money(limits.max_order_notional),
    )
    if limits.max_open_orders is not None:
        message.max_open_orders = limits.max_open_orders
    if limits.price_band_bps is not None:
        message.price_band_bps = limits.price_band_bps
    return message


def _rate(rate: RateLimit) -> risk_pb2.RateLimit:
    return risk_pb2.RateLimit(rate_per_s=_exact(rate.rate_per_s), burst=rate.burst)


def risk_limits(config: RiskConfig) -> risk_pb2.RiskLimits:
    """Return every limit of ``config``; amounts at 8 decimals, overrides by instrument key."""
    message = risk_pb2.RiskLimits(
        defaults=_instrument_limits(config.defaults),
        max_gross_exposure=_money(config.max_gross_exposure),
        order_rate=None if config.order_rate is None else _rate(config.order_rate),
        self_trade_prevention=config.self_trade_prevention,
        max_daily_loss=_money(config.max_daily_loss),
        max_drawdown=_money(config.max_drawdown),
    )
    for key, limits in sorted(config.instruments.items()):
        venue, _, symbol = key.partition(".")
        message.instruments.add(
            instrument=types_pb2.InstrumentId(venue=venue, symbol=symbol),
            limits=_instrument_limits(limits),
        )
    if config.max_open_orders_per_venue is not None:
        message.max_open_orders_per_venue = config.max_open_orders_per_venue
    for venue, rate in sorted(config.venue_order_rates.items()):
        message.venue_order_rates.add(venue=venue, rate=_rate(rate))
    if config.max_drawdown_bps is not None:
        message.max_drawdown_bps = config.max_drawdown_bps
    return message


def risk_state(engine: RiskEngine) -> risk_pb2.RiskState:
    """Return the engine's trading state and counters."""
    state = risk_pb2.RiskState(
        state=to_proto_enum(risk_pb2.TradingState, "TRADING_STATE", engine.state),
        reason=engine.state_reason,
        approvals=engine.approvals,
        cancels=engine.cancels,
        errors=engine.errors,
        custom_checks=engine.custom_checks,
    )
    for reason, count in engine.denials.items():
        state.denials.add(
            reason=to_proto_enum(risk_pb2.DenialReason, "DENIAL_REASON", reason), count=count
        )
    for check, count in sorted(engine.check_errors.items()):
        state.check_errors.add(check=check, count=count)
    context = engine.context
    realised = getattr(context, "realised_pnl_today", None)
    equity = getattr(context, "equity", None)
    peak = getattr(context, "equity_peak", None)
    if callable(realised):
        state.realised_pnl_today.CopyFrom(amount(realised(), NOTIONAL_PRECISION))
    if callable(equity):
        state.equity.CopyFrom(amount(equity(), NOTIONAL_PRECISION))
    if callable(peak):
        state.equity_peak.CopyFrom(amount(peak(), NOTIONAL_PRECISION))
    return state


def _reason(text: str) -> str:
    """Return a required, bounded reason; INVALID_ARGUMENT otherwise."""
    reason = text.strip()
    if not reason:
        raise invalid("reason", "required")
    if len(reason) > _MAX_REASON:
        raise invalid("reason", f"longer than {_MAX_REASON} characters")
    return reason


class RiskServicer(risk_pb2_grpc.RiskServiceServicer):
    """Read the risk state, halt trading, resume it."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    @unary
    async def GetRiskState(
        self, request: risk_pb2.GetRiskStateRequest, context: Context
    ) -> risk_pb2.GetRiskStateResponse:
        """Return the trading state and the engine's counters."""
        return risk_pb2.GetRiskStateResponse(state=risk_state(self.parts.risk_engine()))

    @unary
    async def Halt(self, request: risk_pb2.HaltRequest, context: Context) -> risk_pb2.HaltResponse:
        """Halt trading and cancel every working order; halting again changes nothing."""
        reason = _reason(request.reason)
        engine = self.parts.risk_engine()
        if engine.state is not TradingState.HALTED:
            engine.halt(f"api: {reason}")
            orders = self.parts.orders()
            if orders is not None:  # the trading component's on_halt may have done it already
                orders.cancel_all()
        return risk_pb2.HaltResponse(state=risk_state(engine))

    @unary
    async def Resume(
        self, request: risk_pb2.ResumeRequest, context: Context
    ) -> risk_pb2.ResumeResponse:
        """Return to ACTIVE (the default) or REDUCING trading."""
        reason = _reason(request.reason)
        target = TradingState.ACTIVE
        if request.state != risk_pb2.TRADING_STATE_UNSPECIFIED:
            target = from_proto_enum(
                risk_pb2.TradingState, "TRADING_STATE", request.state, TradingState, "state"
            )
        if target is TradingState.HALTED:
            raise invalid("state", "HALTED is not a state to resume to; call Halt")
        engine = self.parts.risk_engine()
        if target is TradingState.REDUCING:
            engine.reduce(f"api: {reason}")
        else:
            engine.resume(f"api: {reason}")
        return risk_pb2.ResumeResponse(state=risk_state(engine))

    @unary
    async def GetLimits(
        self, request: risk_pb2.GetLimitsRequest, context: Context
    ) -> risk_pb2.GetLimitsResponse:
        """Return the limits the engine enforces and their revision (always 1)."""
        engine = self.parts.risk_engine()
        return risk_pb2.GetLimitsResponse(
            limits=risk_limits(engine.config), revision=LIMITS_REVISION
        )

    @unary
    async def UpdateLimits(
        self, request: risk_pb2.UpdateLimitsRequest, context: Context
    ) -> risk_pb2.UpdateLimitsResponse:
        """Refuse with FAILED_PRECONDITION: the engine's limits are fixed while it runs."""
        self.parts.risk_engine()
        raise ApiError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "limits: the risk engine reads its limits once, at start, and cannot change them "
            "while running; edit the [risk] table of the configuration and restart",
        )
