"""``RiskService``: the trading state, the kill switch and resuming."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from kernel.api.convert import amount, from_proto_enum, to_proto_enum
from kernel.api.errors import invalid, unary
from kernel.api.parts import ApiParts
from kernel.risk import RiskEngine, TradingState
from kernel.risk.config import NOTIONAL_PRECISION
from tradekernel_sdk.proto.tradekernel.v1 import risk_pb2, risk_pb2_grpc

__all__ = ["RiskServicer", "risk_state"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_MAX_REASON = 500


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

    async def GetLimits(self, request: Any, context: Context) -> Any:
        """Answer UNIMPLEMENTED: not served yet."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetLimits is not implemented yet")

    async def UpdateLimits(self, request: Any, context: Context) -> Any:
        """Answer UNIMPLEMENTED: not served yet."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "UpdateLimits is not implemented yet")
