"""The scope each rpc needs, as the rpc comments in ``protos/tradekernel/v1`` state it.

``tests/api/test_server_scopes.py`` parses the protos and fails when this
table and the ``Scope: `x``` comments disagree. A method missing from the
table needs ``admin``: a new rpc is closed until someone classifies it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ADMIN",
    "METHOD_SCOPES",
    "PUBLIC_PREFIXES",
    "READ",
    "SCOPES",
    "TRADE",
    "required_scope",
]

READ: Final = "read"
TRADE: Final = "trade"
ADMIN: Final = "admin"
SCOPES: Final = frozenset({READ, TRADE, ADMIN})

_PACKAGE = "tradekernel.v1"

_BY_SERVICE: Final[dict[str, dict[str, str]]] = {
    "KernelService": {"GetVersion": READ, "GetStatus": READ, "GetConfigSummary": READ},
    "MarketDataService": {
        "StreamBooks": READ,
        "StreamQuotes": READ,
        "StreamTrades": READ,
        "GetBookSnapshot": READ,
        "ListInstruments": READ,
    },
    "OrderService": {
        "SubmitOrder": TRADE,
        "CancelOrder": TRADE,
        "CancelAllOrders": TRADE,
        "ListOrders": READ,
        "StreamOrderEvents": READ,
        "StreamFills": READ,
    },
    "PortfolioService": {"GetPositions": READ, "GetPnl": READ, "StreamPortfolio": READ},
    "RiskService": {
        "GetRiskState": READ,
        "Halt": TRADE,
        "Resume": ADMIN,
        "GetLimits": READ,
        "UpdateLimits": ADMIN,
    },
    "PluginService": {"ListPlugins": READ, "EnablePlugin": ADMIN, "DisablePlugin": ADMIN},
    "ModelService": {
        "ListModels": READ,
        "LoadModel": ADMIN,
        "PromoteModel": ADMIN,
        "ShadowModel": ADMIN,
        "CanaryModel": ADMIN,
        "RollbackModel": ADMIN,
    },
}

METHOD_SCOPES: Final[dict[str, str]] = {
    f"/{_PACKAGE}.{service}/{rpc}": scope
    for service, rpcs in _BY_SERVICE.items()
    for rpc, scope in rpcs.items()
}
"""Full method name (``/tradekernel.v1.OrderService/SubmitOrder``) → scope it needs."""

# Served beside the API and open to every caller: probes and tooling carry no token.
PUBLIC_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def required_scope(method: str) -> str | None:
    """Return the scope ``method`` needs, or None for health and reflection."""
    if method.startswith(PUBLIC_PREFIXES):
        return None
    return METHOD_SCOPES.get(method, ADMIN)
