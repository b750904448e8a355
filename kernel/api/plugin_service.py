"""``PluginService``: what the kernel's plug-in host found, and switching plug-ins while running.

Plug-ins load once, at start, under the operator's allow and block lists
(``[plugins]`` in the configuration, ``TRADEKERNEL_PLUGINS_ALLOW``/``_BLOCK``).
``DisablePlugin`` switches a loaded plug-in off while the kernel runs: its
strategies receive no more data and their working orders are cancelled (the
quarantine policy), its risk checks stop running. ``EnablePlugin`` switches
it back on. Both are journaled before they act and survive a restart
(``kernel.trading.changes``). A plug-in that did not load at start (blocked,
not allowed, refused) cannot be enabled without a restart.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from kernel.api.convert import to_proto_enum
from kernel.api.errors import ApiError, invalid, unary
from kernel.api.parts import ApiParts
from kernel.plugins import PluginHost, PluginInfo, PluginStatus
from kernel.trading.changes import PluginSwitch
from tradekernel_sdk.proto.tradekernel.v1 import plugins_pb2, plugins_pb2_grpc

__all__ = ["PluginServicer", "plugin_message"]

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_NOT_LOADED = (
    "name: plug-in {name!r} did not load at start ({reason}); plug-ins load only at start: "
    "restart with the allow/block lists ([plugins] allow and block) changed to allow it"
)
_API_REASON = "through the API"


def plugin_message(info: PluginInfo, switch: PluginSwitch | None = None) -> plugins_pb2.PluginInfo:
    """Return one plug-in as ``ListPlugins`` gives it, switched off when ``switch`` says so."""
    status, reason = info.status, info.reason
    if switch is not None and not switch.enabled:
        status, reason = PluginStatus.DISABLED, f"disabled while running: {switch.reason}"
    message = plugins_pb2.PluginInfo(
        name=info.name,
        module=info.module,
        source=info.source,
        status=to_proto_enum(plugins_pb2.PluginStatus, "PLUGIN_STATUS", status),
        reason=reason,
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
    """List plug-ins; switch loaded ones off and on while the kernel runs."""

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

    def _message(self, info: PluginInfo) -> plugins_pb2.PluginInfo:
        changes = self.parts.changes()
        switch = None if changes is None else changes.plugin_switches.get(info.name)
        return plugin_message(info, switch)

    def _switch(self, name: str, enabled: bool) -> plugins_pb2.PluginInfo:
        info = self._find(name)
        if info.status is not PluginStatus.ENABLED:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                _NOT_LOADED.format(name=info.name, reason=info.reason or info.status.value),
            )
        self.parts.runtime_changes().switch_plugin(info.name, enabled, _API_REASON)
        return self._message(info)

    @unary
    async def ListPlugins(
        self, request: plugins_pb2.ListPluginsRequest, context: Context
    ) -> plugins_pb2.ListPluginsResponse:
        """List every plug-in the host found, defaults first, then entry points by name."""
        infos = _ordered(self._host().describe())
        return plugins_pb2.ListPluginsResponse(plugins=[self._message(info) for info in infos])

    @unary
    async def EnablePlugin(
        self, request: plugins_pb2.EnablePluginRequest, context: Context
    ) -> plugins_pb2.EnablePluginResponse:
        """Switch a plug-in switched off while running back on; journaled first."""
        plugin = self._switch(request.name, True)
        return plugins_pb2.EnablePluginResponse(plugin=plugin, restart_required=False)

    @unary
    async def DisablePlugin(
        self, request: plugins_pb2.DisablePluginRequest, context: Context
    ) -> plugins_pb2.DisablePluginResponse:
        """Switch a loaded plug-in off: its strategies stop, their orders are cancelled."""
        plugin = self._switch(request.name, False)
        return plugins_pb2.DisablePluginResponse(plugin=plugin, restart_required=False)
