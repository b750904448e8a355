"""The gRPC API server, a lifecycle component on the running asyncio loop.

Start: servicers, health, reflection, every service marked SERVING, then the
server starts. Stop: health goes NOT_SERVING first (so load balancers and
probes stop sending), then the server stops with a grace period for calls
in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_health.v1._async import HealthServicer  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]

from kernel.api.interceptors import (
    ApiMetrics,
    AuthInterceptor,
    LoggingInterceptor,
    MalformedRequestInterceptor,
    MetricsInterceptor,
)
from kernel.api.kernel_service import KernelServicer
from kernel.api.market_data_service import MarketDataServicer
from kernel.api.model_service import ModelServicer
from kernel.api.order_service import OrderServicer
from kernel.api.parts import ApiParts
from kernel.api.plugin_service import PluginServicer
from kernel.api.portfolio_service import PortfolioServicer
from kernel.api.risk_service import RiskServicer
from kernel.api.scopes import SCOPES
from kernel.api.tls import TlsConfig, server_credentials
from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    plugins_pb2,
    plugins_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
)

__all__ = ["ApiServer"]

log = logging.getLogger(__name__)


def _full_name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


class ApiServer:
    """Serve the ``tradekernel.v1`` API with health checking and reflection.

    ``tokens`` maps each bearer token to its scopes (``read``, ``trade``,
    ``admin``). Port 0 binds a free port; :meth:`start` returns the one bound.
    With ``tls`` the port serves TLS only (mutual TLS when it names a client
    CA); its files are read at construction, so a bad one fails before start.
    """

    name = "api"

    def __init__(
        self,
        parts: ApiParts,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Mapping[str, frozenset[str]],
        grace_s: float = 5.0,
        tls: TlsConfig | None = None,
    ) -> None:
        for scopes in tokens.values():
            unknown = set(scopes) - SCOPES
            if unknown:
                raise ValueError(f"unknown scopes {sorted(unknown)}; known: {sorted(SCOPES)}")
        self.parts = parts
        self.host = host
        self.port = port
        self.grace_s = grace_s
        self.tls = tls
        self._credentials = None if tls is None else server_credentials(tls)
        self.metrics = ApiMetrics()
        self.market_data = MarketDataServicer(parts)
        self.orders = OrderServicer(parts)
        """The order servicer; its ``event_stats`` and ``fill_stats`` count its streams."""
        self._tokens = dict(tokens)
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self.services = [
            _full_name(kernel_pb2, "KernelService"),
            _full_name(risk_pb2, "RiskService"),
            _full_name(orders_pb2, "OrderService"),
            _full_name(market_data_pb2, "MarketDataService"),
            _full_name(portfolio_pb2, "PortfolioService"),
            _full_name(plugins_pb2, "PluginService"),
            _full_name(models_pb2, "ModelService"),
        ]
        """Full names of the services served."""

    async def start(self) -> int:
        """Add servicers, health and reflection, mark SERVING, start; return the bound port."""
        server = grpc.aio.server(
            interceptors=[
                LoggingInterceptor(),
                MetricsInterceptor(self.metrics),
                AuthInterceptor(self._tokens),
                MalformedRequestInterceptor(),
            ]
        )
        parts = self.parts
        kernel_pb2_grpc.add_KernelServiceServicer_to_server(KernelServicer(parts), server)
        risk_pb2_grpc.add_RiskServiceServicer_to_server(RiskServicer(parts), server)
        orders_pb2_grpc.add_OrderServiceServicer_to_server(self.orders, server)
        market_data_pb2_grpc.add_MarketDataServiceServicer_to_server(self.market_data, server)
        portfolio_pb2_grpc.add_PortfolioServiceServicer_to_server(PortfolioServicer(parts), server)
        plugins_pb2_grpc.add_PluginServiceServicer_to_server(PluginServicer(parts), server)
        models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(parts), server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection(
            [*self.services, health_name, reflection.SERVICE_NAME], server
        )
        for service in ["", *self.services]:
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        address = f"{self.host}:{self.port}"
        if self._credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, self._credentials)
        if not bound:
            raise RuntimeError(f"cannot bind the API server to {address}")
        await server.start()
        self._server, self._health, self.port = server, health, bound
        security = "plaintext" if self.tls is None else "mutual TLS" if self.tls.mutual else "TLS"
        log.info(
            "API serving on %s:%d (%s, %d services)", self.host, bound, security, len(self.services)
        )
        return bound

    async def stop(self, grace: float | None = None) -> None:
        """Mark every service NOT_SERVING, then stop, giving calls in flight ``grace`` seconds."""
        server, health = self._server, self._health
        if server is None:
            return
        if health is not None:
            await health.enter_graceful_shutdown()
        await server.stop(self.grace_s if grace is None else grace)
        self._server = None
        log.info("API stopped")
