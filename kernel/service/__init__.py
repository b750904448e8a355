"""The kernel as a service: configuration, component wiring and lifecycle."""

from kernel.service.builder import KernelApp, build
from kernel.service.config import ConfigError, KernelConfig, default_config, load_config
from kernel.service.lifecycle import Component, Lifecycle, ShutdownRequest, StartupError
from kernel.service.runner import run

__all__ = [
    "Component",
    "ConfigError",
    "KernelApp",
    "KernelConfig",
    "Lifecycle",
    "ShutdownRequest",
    "StartupError",
    "build",
    "default_config",
    "load_config",
    "run",
]
