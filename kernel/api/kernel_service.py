"""``KernelService``: versions, status and the configuration summary."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, TypeAlias

import grpc

import kernel
import tradekernel_sdk
from kernel.api.convert import decimal, to_proto_enum
from kernel.api.errors import unary
from kernel.api.parts import ApiParts
from tradekernel_sdk.fixedpoint import to_fixed
from tradekernel_sdk.plugin import API_VERSION
from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    market_data_pb2,
    risk_pb2,
    types_pb2,
)

__all__ = ["KernelServicer"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class KernelServicer(kernel_pb2_grpc.KernelServiceServicer):
    """Answer what the kernel is and how it runs."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    @unary
    async def GetVersion(
        self, request: kernel_pb2.GetVersionRequest, context: Context
    ) -> kernel_pb2.GetVersionResponse:
        """Return the kernel, API, plug-in API and SDK versions."""
        return kernel_pb2.GetVersionResponse(
            kernel_version=kernel.__version__,
            api_version="v1",
            plugin_api_version=API_VERSION,
            sdk_version=tradekernel_sdk.__version__,
        )

    @unary
    async def GetStatus(
        self, request: kernel_pb2.GetStatusRequest, context: Context
    ) -> kernel_pb2.GetStatusResponse:
        """Return uptime, components, books and the trading state."""
        parts = self.parts
        response = kernel_pb2.GetStatusResponse(
            ts_started=parts.started_wall_ns,
            uptime_ns=time.monotonic_ns() - parts.started_monotonic_ns,
        )
        if parts.component_health is not None:
            for name, health, detail in parts.component_health():
                response.components.add(
                    name=name,
                    state=kernel_pb2.ComponentState.Value(f"COMPONENT_STATE_{health}"),
                    detail=detail,
                )
        else:
            for name in parts.components():
                response.components.add(name=name, state=kernel_pb2.COMPONENT_STATE_RUNNING)
        for instrument in sorted(parts.instruments(), key=lambda item: (item.venue, item.symbol)):
            book = parts.market.book(instrument.venue, instrument.symbol)
            state = parts.market.book_state(instrument.venue, instrument.symbol)
            response.books.add(
                instrument=types_pb2.InstrumentId(venue=instrument.venue, symbol=instrument.symbol),
                state=to_proto_enum(market_data_pb2.BookState, "BOOK_STATE", state),
                sequence=book.sequence if book else 0,
                ts_recv=book.ts_recv if book else 0,
                bid_levels=len(book.bids) if book else 0,
                ask_levels=len(book.asks) if book else 0,
            )
        risk = parts.risk()
        if risk is not None:
            response.trading_state = to_proto_enum(
                risk_pb2.TradingState, "TRADING_STATE", risk.state
            )
        return response

    @unary
    async def GetConfigSummary(
        self, request: kernel_pb2.GetConfigSummaryRequest, context: Context
    ) -> kernel_pb2.GetConfigSummaryResponse:
        """Return what the configuration sets; secrets are never part of it."""
        config = self.parts.config
        response = kernel_pb2.GetConfigSummaryResponse(source=self.parts.config_source)
        if config is None:
            return response
        response.state_dir = "" if config.state_dir is None else str(config.state_dir)
        response.venues.extend(sorted({replay.venue for replay in config.replay}))
        response.paper_enabled = config.paper.enabled
        response.paper_market_venue = config.paper.market_venue
        for spec in config.strategies:
            response.strategies.add(name=spec.name, strategy=spec.strategy)
        for replay in config.replay:
            summary = response.replays.add(venue=replay.venue, files=[str(f) for f in replay.files])
            if replay.speed is not None:
                text = format(Decimal(repr(replay.speed)), "f")
                places = len(text.partition(".")[2])
                summary.speed.CopyFrom(decimal(to_fixed(text, places), places))
        allow = config.plugins.allow
        response.plugins_allow_all = allow is None
        response.plugins_allow.extend(allow or ())
        response.plugins_block.extend(config.plugins.block)
        if config.metrics.enabled:
            response.metrics_address = f"{config.metrics.host}:{config.metrics.port}"
        return response
