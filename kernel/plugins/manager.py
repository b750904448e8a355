"""The plug-in host: a typed facade over pluggy that finds, vets and loads plug-ins.

Plug-ins come from two places, in this order: the in-tree defaults listed in
:data:`DEFAULT_PLUGINS` (ordinary plug-ins, so each can be blocked and
replaced) and the installed distributions' entry points in the ``tradekernel``
group. Each candidate goes through the same gates, and a failure at any gate
refuses that plug-in alone, with the reason kept for ``tradekernel plugins
list``; the kernel starts without it:

1. the block-list and, for entry-point plug-ins, the allow-list (operator choice:
   the plug-in is *disabled*, not imported);
2. import;
3. the plug-in API version it declares (``TRADEKERNEL_API``);
4. hook validation: every marked function must be a known hook with a matching
   signature, so a misspelled hook is refused at start;
5. its registration hooks, called for it alone: one that raises, or registers
   an invalid item, refuses the plug-in;
6. its names against those already taken: a name another plug-in registered
   first refuses the later plug-in, and the message names both.

Nothing else in the kernel touches pluggy: components ask the host for what was
registered (:meth:`PluginHost.strategies` ...) and it calls the lifecycle hooks
(:meth:`PluginHost.started`, :meth:`PluginHost.stopping`). Per-tick data never
goes through a hook: the kernel's bus delivers it to the registered objects.
"""

from __future__ import annotations

import difflib
import enum
import functools
import importlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, cast

import pluggy

from tradekernel_sdk import hookspecs
from tradekernel_sdk.plugin import (
    API_VERSION,
    PROJECT_NAME,
    ApiVersionError,
    ComponentFactory,
    KernelView,
    RegistrationError,
    RegistrationKind,
    RiskCheck,
    check_api_version,
    collect_registrations,
    declared_api_version,
)
from tradekernel_sdk.strategy import Strategy

__all__ = [
    "ALLOW_ENV",
    "BLOCK_ENV",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "HookFailure",
    "PluginHost",
    "PluginInfo",
    "PluginStatus",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT_NAME
"""The entry-point group installed plug-ins register under."""

DEFAULT_PLUGINS: tuple[str, ...] = ()
"""Modules loaded as plug-ins before any installed one, each named by its module path."""

ALLOW_ENV = "TRADEKERNEL_PLUGINS_ALLOW"
"""Comma-separated plug-in names: when set (even empty), only these entry-point plug-ins load."""

BLOCK_ENV = "TRADEKERNEL_PLUGINS_BLOCK"
"""Comma-separated plug-in names never to load, defaults included."""

_LIFECYCLE_HOOKS = ("kernel_started", "kernel_stopping")


class PluginStatus(enum.Enum):
    """What became of a plug-in the host found."""

    ENABLED = "enabled"
    """Loaded; what it registered is in use."""
    DISABLED = "disabled"
    """Left out by the operator (block-list or allow-list); never imported."""
    REFUSED = "refused"
    """Left out because it failed a check; the reason says which."""


@dataclass(frozen=True)
class PluginInfo:
    """One plug-in as ``tradekernel plugins list`` shows it."""

    name: str
    """The entry-point name, or the module path of a default plug-in."""
    module: str
    """What the entry point points at (``package.module`` or ``package.module:object``)."""
    source: str
    """``"default"`` or ``"entry point"``."""
    distribution: str | None
    version: str | None
    api_version: str | None
    """The ``TRADEKERNEL_API`` it declares (``None`` when not imported or absent)."""
    status: PluginStatus
    reason: str = ""
    """Why it is disabled or refused; empty when enabled."""
    registers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Names it registered, by kind (``"strategies"`` ...); only kinds it used."""

    def to_dict(self) -> dict[str, Any]:
        """Return the plain-data form used for JSON output."""
        return {
            "name": self.name,
            "module": self.module,
            "source": self.source,
            "distribution": self.distribution,
            "version": self.version,
            "api_version": self.api_version,
            "status": self.status.value,
            "reason": self.reason,
            "registers": {kind: list(names) for kind, names in self.registers.items()},
        }


@dataclass(frozen=True)
class HookFailure:
    """A lifecycle hook implementation that raised."""

    plugin: str
    hook: str
    error: str


@dataclass(frozen=True)
class _Candidate:
    name: str
    module: str
    source: str
    distribution: str | None
    version: str | None
    load: Callable[[], object]


class _Refused(Exception):
    """A plug-in failed a gate; the message is the reason shown to the operator."""


def _normal(name: str) -> str:
    """Normalise a name the way distribution names compare (``My_Plugin`` is ``my-plugin``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _keys(plugin: _Candidate | PluginInfo) -> tuple[str, ...]:
    """Return the names the allow- and block-lists can use for ``plugin``."""
    if plugin.distribution is None:
        return (plugin.name,)
    return (plugin.name, plugin.distribution)


def _names(text: str | None) -> frozenset[str] | None:
    """Parse a comma-separated list; ``None`` stays ``None`` (not set)."""
    if text is None:
        return None
    return frozenset(name.strip() for name in text.split(",") if name.strip())


class PluginHost:
    """Discover, vet and load plug-ins once, then answer what they registered.

    ``allow`` (``None``: no restriction) and ``block`` combine with the
    environment's :data:`ALLOW_ENV` and :data:`BLOCK_ENV`: a plug-in must be
    allowed by both allow-lists and blocked by neither block-list. Names match
    a plug-in's name or its distribution's. The allow-list applies to
    entry-point plug-ins only; the block-list to every plug-in.
    """

    def __init__(
        self,
        *,
        allow: Iterable[str] | None = None,
        block: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        default_plugins: Sequence[str] = DEFAULT_PLUGINS,
        entry_points: Callable[[], Iterable[metadata.EntryPoint]] | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        """Configure the host; nothing is imported before :meth:`load`."""
        self._allow = None if allow is None else frozenset(allow)
        self._block = frozenset(block)
        self._environ = os.environ if environ is None else environ
        self._default_plugins = tuple(default_plugins)
        self._entry_points = entry_points or (
            lambda: metadata.entry_points(group=ENTRY_POINT_GROUP)
        )
        self._api_version = api_version
        self._manager = pluggy.PluginManager(PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._loaded = False
        self._infos: list[PluginInfo] = []
        self._enabled: list[tuple[str, object]] = []
        self._registry: dict[RegistrationKind, dict[str, Any]] = {
            kind: {} for kind in RegistrationKind
        }
        self._owners: dict[tuple[RegistrationKind, str], str] = {}

    @property
    def api_version(self) -> str:
        """Return the plug-in API version this host provides."""
        return self._api_version

    # Loading

    def load(self) -> None:
        """Find and vet every plug-in; later calls do nothing.

        Never raises because of a plug-in: failures are logged and kept in
        :meth:`describe`.
        """
        if self._loaded:
            return
        self._loaded = True
        allow_env = _names(self._environ.get(ALLOW_ENV))
        block_env = _names(self._environ.get(BLOCK_ENV)) or frozenset()
        candidates = self._candidates()
        seen: dict[str, _Candidate] = {}
        for candidate in candidates:
            taken = seen.get(candidate.name)
            if taken is not None:
                self._record(
                    candidate,
                    PluginStatus.REFUSED,
                    f"the name {candidate.name!r} is already taken by "
                    f"{taken.distribution or taken.module}",
                )
                continue
            seen[candidate.name] = candidate
            reason = self._disabled_reason(candidate, allow_env, block_env)
            if reason is not None:
                self._record(candidate, PluginStatus.DISABLED, reason)
            else:
                self._admit(candidate)
        found = {_normal(key) for info in self._infos for key in _keys(info)}
        for allowed in sorted((allow_env or frozenset()) | (self._allow or frozenset())):
            if _normal(allowed) not in found:
                log.warning("allow-listed plug-in %r is not installed", allowed)
        self._manager.check_pending()

    def _disabled_reason(
        self,
        candidate: _Candidate,
        allow_env: frozenset[str] | None,
        block_env: frozenset[str],
    ) -> str | None:
        """Return why the operator's lists leave ``candidate`` out, or ``None``."""
        keys = {_normal(key) for key in _keys(candidate)}

        def listed(names: frozenset[str]) -> bool:
            return any(_normal(name) in keys for name in names)

        if listed(block_env):
            return f"blocked by {BLOCK_ENV}"
        if listed(self._block):
            return "blocked by the block-list"
        if candidate.source != "entry point":
            return None
        if allow_env is not None and not listed(allow_env):
            return f"not in {ALLOW_ENV}"
        if self._allow is not None and not listed(self._allow):
            return "not in the allow-list"
        return None

    def _candidates(self) -> list[_Candidate]:
        """Return the default plug-ins, then the entry points sorted by distribution and name."""
        candidates = [
            _Candidate(
                name=module,
                module=module,
                source="default",
                distribution=None,
                version=None,
                load=functools.partial(importlib.import_module, module),
            )
            for module in self._default_plugins
        ]
        found: list[_Candidate] = []
        for entry_point in self._entry_points():
            dist = entry_point.dist
            found.append(
                _Candidate(
                    name=entry_point.name,
                    module=entry_point.value,
                    source="entry point",
                    distribution=dist.name if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    load=entry_point.load,
                )
            )
        found.sort(key=lambda candidate: (candidate.distribution or "", candidate.name))
        return candidates + found

    def _admit(self, candidate: _Candidate) -> None:
        """Take ``candidate`` through import, version, hook and registration checks."""
        declared: object = None
        plugin: object = None
        try:
            try:
                plugin = candidate.load()
            except (Exception, SystemExit) as error:
                log.debug("plug-in %s failed to import", candidate.name, exc_info=True)
                raise _Refused(f"import failed: {type(error).__name__}: {error}") from error
            if plugin is None:
                raise _Refused(f"the entry point {candidate.module!r} resolves to None")
            declared = declared_api_version(plugin)
            try:
                check_api_version(declared, self._api_version)
            except ApiVersionError as error:
                raise _Refused(
                    f"plug-in {candidate.name!r}{self._version_text(candidate)} {error}"
                ) from error
            self._register(candidate, plugin)
            try:
                registered = collect_registrations(self._manager, plugin)
                self._check_names(candidate, registered)
            except (RegistrationError, _Refused) as error:
                self._manager.unregister(plugin)
                raise _Refused(str(error)) from error
        except _Refused as refusal:
            log.error("plug-in %s refused: %s", candidate.name, refusal)
            self._record(
                candidate,
                PluginStatus.REFUSED,
                str(refusal),
                api_version=declared if isinstance(declared, str) else None,
            )
            return
        for kind, items in registered.items():
            for name, item in items.items():
                self._registry[kind][name] = item
                self._owners[kind, name] = candidate.name
        self._enabled.append((candidate.name, plugin))
        self._record(
            candidate,
            PluginStatus.ENABLED,
            api_version=cast(str, declared),
            registers={kind.value: tuple(items) for kind, items in registered.items() if items},
        )
        log.info("plug-in %s enabled", candidate.name)

    @staticmethod
    def _version_text(candidate: _Candidate) -> str:
        """Return `` (distribution version)`` for messages, or nothing when unknown."""
        if candidate.distribution is None:
            return ""
        return f" ({candidate.distribution} {candidate.version})"

    def _register(self, candidate: _Candidate, plugin: object) -> None:
        """Register ``plugin`` with pluggy and refuse it for unknown or malformed hooks."""
        other = next((name for name, enabled in self._enabled if enabled is plugin), None)
        if other is not None:
            raise _Refused(f"the same object is already loaded as plug-in {other!r}")
        try:
            self._manager.register(plugin, name=candidate.name)
        except pluggy.PluginValidationError as error:
            if self._manager.is_registered(plugin):  # pluggy < 1.6 can leave it half-registered
                self._manager.unregister(plugin)
            raise _Refused(f"invalid hook implementation: {error}") from error
        unknown = sorted(
            caller.name
            for caller in self._manager.get_hookcallers(plugin) or ()
            if not caller.has_spec()
            and any(
                impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()
            )
        )
        if unknown:
            self._manager.unregister(plugin)
            raise _Refused("; ".join(self._unknown_hook_message(name) for name in unknown))

    def _unknown_hook_message(self, name: str) -> str:
        """Say that ``name`` is not a hook and suggest the nearest one."""
        known = [
            name
            for name in dir(self._manager.hook)
            if not name.startswith("_") and getattr(self._manager.hook, name).has_spec()
        ]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{name!r} is not a {PROJECT_NAME} hook{hint}"

    def _check_names(
        self, candidate: _Candidate, registered: Mapping[RegistrationKind, Mapping[str, Any]]
    ) -> None:
        """Refuse ``candidate`` if it registers a name another plug-in already holds."""
        clashes = [
            f"{kind.singular} {name!r} is already registered by plug-in "
            f"{self._owners[kind, name]!r}"
            for kind, items in registered.items()
            for name in items
            if (kind, name) in self._owners
        ]
        if clashes:
            raise _Refused(
                "; ".join(clashes)
                + f" (block one of them with {BLOCK_ENV}={candidate.name} or the other name)"
            )

    def _record(
        self,
        candidate: _Candidate,
        status: PluginStatus,
        reason: str = "",
        *,
        api_version: str | None = None,
        registers: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Keep what happened to ``candidate`` for :meth:`describe`."""
        if status is PluginStatus.DISABLED:
            log.info("plug-in %s disabled: %s", candidate.name, reason)
        self._infos.append(
            PluginInfo(
                name=candidate.name,
                module=candidate.module,
                source=candidate.source,
                distribution=candidate.distribution,
                version=candidate.version,
                api_version=api_version,
                status=status,
                reason=reason,
                registers=dict(registers or {}),
            )
        )

    # What was registered

    def _items(self, kind: RegistrationKind) -> dict[str, Any]:
        """Return a copy of the registry of ``kind``, loading first if needed."""
        self.load()
        return dict(self._registry[kind])

    def strategies(self) -> dict[str, type[Strategy]]:
        """Return the registered strategy classes by name."""
        return self._items(RegistrationKind.STRATEGY)

    def models(self) -> dict[str, ComponentFactory]:
        """Return the registered model factories by name."""
        return self._items(RegistrationKind.MODEL)

    def detectors(self) -> dict[str, ComponentFactory]:
        """Return the registered detector factories by name."""
        return self._items(RegistrationKind.DETECTOR)

    def sentiment_sources(self) -> dict[str, ComponentFactory]:
        """Return the registered sentiment-source factories by name."""
        return self._items(RegistrationKind.SENTIMENT_SOURCE)

    def venues(self) -> dict[str, ComponentFactory]:
        """Return the registered venue factories by name."""
        return self._items(RegistrationKind.VENUE)

    def risk_checks(self) -> dict[str, RiskCheck]:
        """Return the registered risk checks by name, in registration order."""
        return self._items(RegistrationKind.RISK_CHECK)

    def features(self) -> dict[str, ComponentFactory]:
        """Return the registered feature factories by name."""
        return self._items(RegistrationKind.FEATURE)

    def owner(self, kind: RegistrationKind, name: str) -> str | None:
        """Return the name of the plug-in that registered ``name`` as ``kind``."""
        self.load()
        return self._owners.get((kind, name))

    def describe(self) -> list[PluginInfo]:
        """Return every plug-in found, enabled or not, in load order."""
        self.load()
        return list(self._infos)

    # Lifecycle

    def started(self, kernel: KernelView) -> list[HookFailure]:
        """Call ``kernel_started`` on each enabled plug-in in load order; return the failures."""
        self.load()
        return self._call_each("kernel_started", self._enabled, kernel)

    def stopping(self, kernel: KernelView) -> list[HookFailure]:
        """Call ``kernel_stopping`` on each enabled plug-in, last loaded first; return failures."""
        self.load()
        return self._call_each("kernel_stopping", list(reversed(self._enabled)), kernel)

    def _call_each(
        self, hook: str, plugins: Sequence[tuple[str, object]], kernel: KernelView
    ) -> list[HookFailure]:
        """Call ``hook`` for one plug-in at a time so one failure stops no other."""
        assert hook in _LIFECYCLE_HOOKS
        failures: list[HookFailure] = []
        everyone = self._manager.get_plugins()
        for name, plugin in plugins:
            caller = self._manager.subset_hook_caller(
                hook, remove_plugins=[other for other in everyone if other is not plugin]
            )
            try:
                caller(kernel=kernel)
            except Exception as error:
                log.exception("plug-in %s failed in %s", name, hook)
                failures.append(HookFailure(name, hook, f"{type(error).__name__}: {error}"))
        return failures
