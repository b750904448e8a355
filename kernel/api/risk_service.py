"""``RiskService``: the trading state, the kill switch, resuming, and the limits in force.

``UpdateLimits`` replaces every limit at once while the engine runs: the new
limits are validated as the ``[risk]`` table is, journaled, and enforced from
the next order on (``kernel.trading.changes``); a restart restores them. The
revision guards against lost updates: 1 for the configuration's limits, plus
one per update, and an update based on another revision is refused.
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
    RiskConfigError,
    decimal_to_fixed,
)
from kernel.trading.changes import RevisionMismatch
from tradekernel_sdk.proto.tradekernel.v1 import risk_pb2, risk_pb2_grpc, types_pb2

__all__ = ["RiskServicer", "limits_table", "risk_limits", "risk_state"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_MAX_REASON = 500


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


def _decimal_text(value: types_pb2.Decimal) -> str:
    return str(Decimal(value.units).scaleb(-value.precision))


def _instrument_table(limits: risk_pb2.InstrumentLimits) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if limits.HasField("max_position"):
        table["max_position"] = _decimal_text(limits.max_position)
    if limits.HasField("min_order_notional"):
        table["min_order_notional"] = limits.min_order_notional.value
    if limits.HasField("max_order_notional"):
        table["max_order_notional"] = limits.max_order_notional.value
    if limits.HasField("max_open_orders"):
        table["max_open_orders"] = limits.max_open_orders
    if limits.HasField("price_band_bps"):
        table["price_band_bps"] = limits.price_band_bps
    return table


def _rate_table(rate: risk_pb2.RateLimit) -> dict[str, Any]:
    return {"rate_per_s": _decimal_text(rate.rate_per_s), "burst": rate.burst}


def limits_table(message: risk_pb2.RiskLimits) -> dict[str, Any]:
    """Return ``RiskLimits`` as the ``[risk]`` table of a TOML file would hold them.

    Only the repeated fields are checked here (INVALID_ARGUMENT naming the
    entry); every value is validated when the table is parsed.
    """
    table: dict[str, Any] = {
        "defaults": _instrument_table(message.defaults),
        "self_trade_prevention": message.self_trade_prevention,
    }
    instruments: dict[str, Any] = {}
    for index, override in enumerate(message.instruments):
        venue, symbol = override.instrument.venue, override.instrument.symbol
        if not venue or not symbol:
            raise invalid(f"limits.instruments[{index}].instrument", "venue and symbol required")
        key = f"{venue}.{symbol}"
        if key in instruments:
            raise invalid(f"limits.instruments[{index}].instrument", f"{key} given twice")
        instruments[key] = _instrument_table(override.limits)
    if instruments:
        table["instruments"] = instruments
    rates: dict[str, Any] = {}
    for index, venue_rate in enumerate(message.venue_order_rates):
        if not venue_rate.venue:
            raise invalid(f"limits.venue_order_rates[{index}].venue", "required")
        if venue_rate.venue in rates:
            raise invalid(
                f"limits.venue_order_rates[{index}].venue", f"{venue_rate.venue} given twice"
            )
        if not venue_rate.HasField("rate"):
            raise invalid(f"limits.venue_order_rates[{index}].rate", "required")
        rates[venue_rate.venue] = _rate_table(venue_rate.rate)
    if rates:
        table["venue_order_rates"] = rates
    if message.HasField("order_rate"):
        table["order_rate"] = _rate_table(message.order_rate)
    if message.HasField("max_gross_exposure"):
        table["max_gross_exposure"] = message.max_gross_exposure.value
    if message.HasField("max_daily_loss"):
        table["max_daily_loss"] = message.max_daily_loss.value
    if message.HasField("max_drawdown"):
        table["max_drawdown"] = message.max_drawdown.value
    if message.HasField("max_open_orders_per_venue"):
        table["max_open_orders_per_venue"] = message.max_open_orders_per_venue
    if message.HasField("max_drawdown_bps"):
        table["max_drawdown_bps"] = message.max_drawdown_bps
    return table


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
        """Return the limits the engine enforces and their revision."""
        engine = self.parts.risk_engine()
        changes = self.parts.changes()
        revision = 1 if changes is None else changes.limits_revision
        return risk_pb2.GetLimitsResponse(limits=risk_limits(engine.config), revision=revision)

    @unary
    async def UpdateLimits(
        self, request: risk_pb2.UpdateLimitsRequest, context: Context
    ) -> risk_pb2.UpdateLimitsResponse:
        """Validate, journal and enforce new limits, if based on the current revision."""
        reason = _reason(request.reason)
        if not request.HasField("limits"):
            raise invalid("limits", "required: the complete new limits (edit what GetLimits gave)")
        if request.expected_revision == 0:
            raise invalid("expected_revision", "required: the revision GetLimits gave")
        table = limits_table(request.limits)
        engine = self.parts.risk_engine()
        changes = self.parts.runtime_changes()
        try:
            revision = changes.update_limits(table, request.expected_revision, f"api: {reason}")
        except RiskConfigError as error:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        except RevisionMismatch as error:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, str(error)) from None
        return risk_pb2.UpdateLimitsResponse(limits=risk_limits(engine.config), revision=revision)
