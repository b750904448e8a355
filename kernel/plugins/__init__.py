"""Plug-ins: discovery, vetting and registration through pluggy (:mod:`kernel.plugins.manager`)."""

from kernel.plugins.manager import (
    DEFAULT_PLUGINS,
    HookFailure,
    PluginHost,
    PluginInfo,
    PluginStatus,
)

__all__ = ["DEFAULT_PLUGINS", "HookFailure", "PluginHost", "PluginInfo", "PluginStatus"]
