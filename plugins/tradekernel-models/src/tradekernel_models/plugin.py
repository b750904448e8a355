"""The plug-in module: what tradekernel-models registers with the kernel."""

from __future__ import annotations

from tradekernel_models.features import FEATURES
from tradekernel_sdk import Register, hookimpl
from tradekernel_sdk.plugin import ComponentFactory

__all__ = ["TRADEKERNEL_API", "register_features"]

TRADEKERNEL_API = "1.0"
"""The plug-in API version this plug-in is written against."""


@hookimpl
def register_features(register: Register[ComponentFactory]) -> None:
    """Register every streaming feature under its name."""
    for name, feature in FEATURES.items():
        register(name, feature)
