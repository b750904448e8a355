"""What a plug-in needs to talk to the kernel's plug-in host.

* :data:`hookimpl` marks the functions of a plug-in module that implement hooks
  from :mod:`tradekernel_sdk.hookspecs`.
* :data:`API_VERSION` is the version of the plug-in API this SDK describes. A
  plug-in declares the version it was written against with a module-level
  ``TRADEKERNEL_API = "1.0"`` in its entry-point module; the kernel refuses a
  plug-in that declares none or an incompatible one (:func:`check_api_version`).
* :class:`Register` is the callback every registration hook receives;
  :class:`RegistrationKind` lists what can be registered.
* :class:`KernelView` is what the lifecycle hooks may see of the kernel.
* :func:`collect_registrations` calls one plug-in's registration hooks and
  validates what it registered; the kernel's host and the test harness share it.
"""

from __future__ import annotations

import enum
import re
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import pluggy

from tradekernel_sdk.strategy import Strategy

__all__ = [
    "API_ATTRIBUTE",
    "API_VERSION",
    "PROJECT_NAME",
    "ApiVersionError",
    "ComponentFactory",
    "KernelView",
    "Register",
    "RegistrationError",
    "RegistrationKind",
    "RiskCheck",
    "check_api_version",
    "collect_registrations",
    "declared_api_version",
    "hookimpl",
    "parse_api_version",
]

PROJECT_NAME = "tradekernel"
"""The pluggy project name and the entry-point group plug-ins register under."""

API_VERSION = "1.0"
"""The plug-in API this SDK describes, ``MAJOR.MINOR``.

A plug-in written against ``X.Y`` runs on a kernel providing ``A.B`` when
``X == A`` and ``Y <= B``: minors only add hooks and fields, majors break them.
"""

API_ATTRIBUTE = "TRADEKERNEL_API"
"""The module-level name under which a plug-in declares the API version it targets."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator marking a plug-in function as the implementation of a hook."""

ComponentFactory = Callable[..., Any]
"""Something the kernel calls to build a component: usually the component's class."""

RiskCheck = Callable[..., Any]
"""A pre-trade check, ``check(request, context) -> decision | None``, as the risk engine runs it."""

_T_contra = TypeVar("_T_contra", contravariant=True)

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ApiVersionError(ValueError):
    """A plug-in's declared API version is missing, malformed or incompatible."""


class RegistrationError(ValueError):
    """A plug-in registered something invalid, or the same name twice."""


class RegistrationKind(enum.Enum):
    """What a plug-in can contribute; each kind has one ``register_<value>`` hook."""

    STRATEGY = "strategies"
    MODEL = "models"
    DETECTOR = "detectors"
    SENTIMENT_SOURCE = "sentiment_sources"
    VENUE = "venues"
    RISK_CHECK = "risk_checks"
    FEATURE = "features"

    @property
    def hook_name(self) -> str:
        """Return the name of the hook that registers this kind."""
        return f"register_{self.value}"

    @property
    def singular(self) -> str:
        """Return the kind's name for one item, as used in messages."""
        return _SINGULAR[self]


_SINGULAR = {
    RegistrationKind.STRATEGY: "strategy",
    RegistrationKind.MODEL: "model",
    RegistrationKind.DETECTOR: "detector",
    RegistrationKind.SENTIMENT_SOURCE: "sentiment source",
    RegistrationKind.VENUE: "venue",
    RegistrationKind.RISK_CHECK: "risk check",
    RegistrationKind.FEATURE: "feature",
}


class Register(Protocol[_T_contra]):
    """The callback a registration hook calls once per thing it contributes.

    ``name`` is how the operator refers to it in the configuration (for example
    ``[strategies.<name>]``), so it is restricted to TOML bare-key characters:
    letters, digits, ``_`` and ``-``.
    """

    def __call__(self, name: str, item: _T_contra, /) -> None:
        """Register ``item`` under ``name``."""


@runtime_checkable
class KernelView(Protocol):
    """The read-only view of the kernel that lifecycle hooks receive."""

    @property
    def version(self) -> str:
        """Return the kernel's version."""

    @property
    def api_version(self) -> str:
        """Return the plug-in API version the kernel provides."""

    @property
    def config_summary(self) -> Mapping[str, Any]:
        """Return a summary of the running configuration, secrets left out."""

    def clock(self) -> int:
        """Return the kernel's current time in nanoseconds (market time in a replay)."""


def parse_api_version(text: object) -> tuple[int, int]:
    """Parse ``"MAJOR.MINOR"`` into two integers, or raise :class:`ApiVersionError`."""
    major, dot, minor = text.partition(".") if isinstance(text, str) else ("", "", "")
    if not (dot and major.isdecimal() and minor.isdecimal()):
        raise ApiVersionError(
            f"declares {API_ATTRIBUTE} = {text!r}, which is not MAJOR.MINOR like {API_VERSION!r}"
        )
    return int(major), int(minor)


def declared_api_version(plugin: object) -> object:
    """Return the ``TRADEKERNEL_API`` a plug-in declares, or ``None``.

    A plug-in is usually a module; for another object the attribute is looked
    up on it and then on the module that defines it.
    """
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None and not isinstance(plugin, types.ModuleType):
        module = sys.modules.get(getattr(plugin, "__module__", None) or "")
        declared = getattr(module, API_ATTRIBUTE, None)
    return declared


def check_api_version(declared: object, provided: str = API_VERSION) -> None:
    """Raise :class:`ApiVersionError` unless a plug-in targeting ``declared`` runs on ``provided``.

    ``declared`` is the plug-in's ``TRADEKERNEL_API`` (``None`` when it has none).
    """
    if declared is None:
        raise ApiVersionError(
            f"declares no plug-in API version: add {API_ATTRIBUTE} = {provided!r} "
            "to the entry-point module"
        )
    plugin_major, plugin_minor = parse_api_version(declared)
    kernel_major, kernel_minor = parse_api_version(provided)
    if plugin_major != kernel_major:
        raise ApiVersionError(
            f"targets plug-in API {declared}, but the kernel provides {provided} "
            "(the major versions must match)"
        )
    if plugin_minor > kernel_minor:
        raise ApiVersionError(
            f"targets plug-in API {declared}, but the kernel provides only {provided} "
            "(the plug-in needs a newer kernel)"
        )


def _check_item(kind: RegistrationKind, name: object, item: object) -> None:
    """Raise :class:`RegistrationError` if ``item`` cannot be registered as ``kind``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistrationError(
            f"{kind.singular} name {name!r} is not allowed: use letters, digits, '_' and '-'"
        )
    if kind is RegistrationKind.STRATEGY:
        if not (isinstance(item, type) and issubclass(item, Strategy)):
            raise RegistrationError(
                f"strategy {name!r} must be a subclass of tradekernel_sdk.Strategy, got {item!r}"
            )
        if not (isinstance(item.Config, type) and issubclass(item.Config, Strategy.Config)):
            raise RegistrationError(
                f"strategy {name!r}: {item.__name__}.Config must subclass Strategy.Config"
            )
    elif not callable(item):
        raise RegistrationError(f"{kind.singular} {name!r} must be callable, got {item!r}")


class _Collector:
    """The ``register`` callback handed to one registration hook of one plug-in."""

    def __init__(self, kind: RegistrationKind) -> None:
        self.kind = kind
        self.found: dict[str, Any] = {}
        self.open = True

    def __call__(self, name: str, item: object, /) -> None:
        """Validate and keep ``item``; refuse a repeated name or a call after the hook."""
        if not self.open:
            raise RegistrationError(
                f"register() for {self.kind.value} called after {self.kind.hook_name} returned"
            )
        _check_item(self.kind, name, item)
        if name in self.found:
            raise RegistrationError(f"{self.kind.singular} {name!r} registered twice")
        self.found[name] = item


def collect_registrations(
    manager: pluggy.PluginManager, plugin: object
) -> dict[RegistrationKind, dict[str, Any]]:
    """Call ``plugin``'s registration hooks alone and return what it registered, by kind.

    ``plugin`` must already be registered with ``manager``; only its own hook
    implementations run. Raise :class:`RegistrationError` when it registers an
    invalid item or the same name twice, or when one of its hooks raises (the
    hook's exception is chained).
    """
    others = [other for other in manager.get_plugins() if other is not plugin]
    collected: dict[RegistrationKind, dict[str, Any]] = {}
    for kind in RegistrationKind:
        register = _Collector(kind)
        caller = manager.subset_hook_caller(kind.hook_name, remove_plugins=others)
        try:
            caller(register=register)
        except RegistrationError as error:
            raise RegistrationError(f"{kind.hook_name}: {error}") from error
        except (Exception, SystemExit) as error:
            raise RegistrationError(
                f"{kind.hook_name} raised {type(error).__name__}: {error}"
            ) from error
        finally:
            register.open = False
        collected[kind] = register.found
    return collected
