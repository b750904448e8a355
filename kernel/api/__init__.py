"""The kernel's gRPC API server: servicers, interceptors and the server component.

:class:`ApiServer` serves the ``tradekernel.v1`` services (``docs/api.md``)
on the running asyncio loop, with health checking and server reflection.
"""

from kernel.api.errors import ApiError
from kernel.api.interceptors import ApiMetrics
from kernel.api.parts import ApiParts
from kernel.api.scopes import ADMIN, READ, SCOPES, TRADE, required_scope
from kernel.api.server import ApiServer

__all__ = [
    "ADMIN",
    "READ",
    "SCOPES",
    "TRADE",
    "ApiError",
    "ApiMetrics",
    "ApiParts",
    "ApiServer",
    "required_scope",
]
