"""``PluginService``: what the kernel's plug-in host found and what became of each.

Plug-ins load once, at start, under the operator's allow and block lists
(``[plugins]`` in the configuration, ``TRADEKERNEL_PLUGINS_ALLOW``/``_BLOCK``).
The kernel keeps no writable copy of those lists, so ``EnablePlugin`` and
``DisablePlugin`` check the name and then fail with FAILED_PRECONDITION,
saying how to make the change.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from kernel.api.convert import to_proto_enum
from kernel.api.errors import ApiError, invalid, unary
from kernel.api.parts import ApiParts
from kernel.plugins import PluginHost, PluginInfo
from tradekernel_sdk.proto.tradekernel.v1 import plugins_pb2, plugins_pb2_grpc

__all__ = ["PluginServicer", "plugin_message"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_RESTART = (
    "plug-ins are loaded at start; restart with the allow/block lists "
    "([plugins] allow and block in the configuration) changed to {action} {name!r}"
)


def plugin_message(info: PluginInfo) -> plugins_pb2.PluginInfo:
    """Return one plug-in as ``ListPlugins`` gives it."""
    message = plugins_pb2.PluginInfo(
        name=info.name,
        module=info.module,
        source=info.source,
        status=to_proto_enum(plugins_pb2.PluginStatus, "PLUGIN_STATUS", info.status),
        reason=info.reason,
    )
    if info.distribution is not None:
        message.distribution = info.distribution
    if info.version is not None:
        message.version = info.version
    if info.api_version is not None:
        message.api_version = info.api_version
    for kind, names in info.registers.items():
        message.registers.add(kind=kind, names=list(names))
    return message


def _ordered(infos: list[PluginInfo]) -> list[PluginInfo]:
    """Return defaults first, in load order, then entry points by name."""
    defaults = [info for info in infos if info.source == "default"]
    others = sorted((info for info in infos if info.source != "default"), key=lambda i: i.name)
    return defaults + others


class PluginServicer(plugins_pb2_grpc.PluginServiceServicer):
    """List plug-ins; refuse to change them while the kernel runs."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    def _host(self) -> PluginHost:
        host = self.parts.plugins()
        if host is None:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this kernel loaded no plug-ins (the host starts only with strategies configured)",
            )
        return host

    def _find(self, name: str) -> PluginInfo:
        if not name:
            raise invalid("name", "required")
        found = next((info for info in self._host().describe() if info.name == name), None)
        if found is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"name: no plug-in {name!r}")
        return found

    @unary
    async def ListPlugins(
        self, request: plugins_pb2.ListPluginsRequest, context: Context
    ) -> plugins_pb2.ListPluginsResponse:
        """List every plug-in the host found, defaults first, then entry points by name."""
        infos = _ordered(self._host().describe())
        return plugins_pb2.ListPluginsResponse(plugins=[plugin_message(info) for info in infos])

    @unary
    async def EnablePlugin(
        self, request: plugins_pb2.EnablePluginRequest, context: Context
    ) -> plugins_pb2.EnablePluginResponse:
        """Refuse with FAILED_PRECONDITION: the allow and block lists are read at start."""
        info = self._find(request.name)
        raise ApiError(
            grpc.StatusCode.FAILED_PRECONDITION, _RESTART.format(action="allow", name=info.name)
        )

    @unary
    async def DisablePlugin(
        self, request: plugins_pb2.DisablePluginRequest, context: Context
    ) -> plugins_pb2.DisablePluginResponse:
        """Refuse with FAILED_PRECONDITION: the allow and block lists are read at start."""
        info = self._find(request.name)
        raise ApiError(
            grpc.StatusCode.FAILED_PRECONDITION, _RESTART.format(action="block", name=info.name)
        )
