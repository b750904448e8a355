"""Operator changes while trading runs: the risk limits, and plug-ins switched off and on.

Each change is journaled, and the journal synced, before it takes effect;
:meth:`RuntimeChanges.restore` applies the journal's changes again at start,
so a restart keeps them. Journal records (kind → payload):

``risk_limits``   ``[revision, limits, reason]``: ``limits`` is the ``[risk]``
                  table as a TOML file would hold it (amounts as strings)
``plugin_state``  ``[name, enabled, reason]``

Limits carry a revision: 1 for the configuration's, plus one per update. An
update names the revision it was based on and is refused when that is no
longer current, so two operators cannot overwrite each other unknowingly and
a repeated call cannot apply twice.

Disabling a plug-in disables the strategies built from what it registered
(no more data; working orders cancelled as a quarantine does) and
unregisters its risk checks; enabling it undoes both (its checks then run
after the others).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from kernel.risk import CustomCheck, RiskEngine
from kernel.risk.config import RiskConfig, parse_risk_config
from kernel.trading.runner import StrategyRunner

__all__ = ["LIMITS_FIELD", "PluginSwitch", "RevisionMismatch", "RuntimeChanges"]

log = logging.getLogger(__name__)

LIMITS_FIELD: Final = "limits"
"""The prefix of limit validation errors (``limits.defaults.max_position: ...``)."""


class _Journal(Protocol):
    def append(self, kind: str, payload: Any, ts_ns: int | None = None) -> int: ...

    def sync(self) -> int: ...


class RevisionMismatch(Exception):
    """An update was based on a revision of the limits that is no longer current."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"expected_revision: the limits are at revision {current}, not {expected}; "
            "read them again and reapply the change"
        )
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class PluginSwitch:
    """An operator's switch of one plug-in: on or off, and why."""

    enabled: bool
    reason: str


class RuntimeChanges:
    """Apply and journal operator changes to the running risk engine and strategies.

    ``strategy_plugins`` maps each strategy instance to the plug-in that
    registered its class; ``risk_checks`` maps each registered check to
    ``(plug-in, check)``. Plug-ins absent from both can still be switched; the
    switch is recorded and changes nothing that runs.
    """

    RECORD_KINDS: Final = frozenset({"risk_limits", "plugin_state"})

    def __init__(
        self,
        *,
        journal: _Journal,
        risk: RiskEngine,
        runner: StrategyRunner,
        strategy_plugins: Mapping[str, str],
        risk_checks: Mapping[str, tuple[str, CustomCheck]] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.journal = journal
        self.risk = risk
        self.runner = runner
        self.strategy_plugins = dict(strategy_plugins)
        self.risk_checks = dict(risk_checks or {})
        self.clock = clock
        self.limits_revision = 1
        """1 for the limits of the configuration, plus one per update."""
        self.plugin_switches: dict[str, PluginSwitch] = {}
        """Plug-ins an operator switched, by name; a plug-in absent here is as it started."""

    # -- limits --------------------------------------------------------------

    def update_limits(self, raw: Mapping[str, Any], expected_revision: int, reason: str) -> int:
        """Validate, journal and enforce new limits; return their revision.

        Raises :class:`~kernel.risk.config.RiskConfigError` naming the field
        (``limits.…``) or :class:`RevisionMismatch`; either way nothing changes.
        """
        config = parse_risk_config(raw, LIMITS_FIELD)
        if expected_revision != self.limits_revision:
            raise RevisionMismatch(expected_revision, self.limits_revision)
        revision = self.limits_revision + 1
        self._journal("risk_limits", [revision, _plain(raw), reason])
        self._use_limits(config, revision)
        log.warning("risk limits now at revision %d: %s", revision, reason)
        return revision

    def _use_limits(self, config: RiskConfig, revision: int) -> None:
        self.risk.replace_config(config)
        self.limits_revision = revision

    # -- plug-ins ------------------------------------------------------------

    def plugin_enabled(self, name: str) -> bool:
        """Return False while an operator has ``name`` switched off."""
        switch = self.plugin_switches.get(name)
        return switch is None or switch.enabled

    def switch_plugin(self, name: str, enabled: bool, reason: str) -> bool:
        """Journal and apply a switch of plug-in ``name``; return False when it was already so."""
        if self.plugin_enabled(name) is enabled:
            return False
        self._journal("plugin_state", [name, enabled, reason])
        self._switch(name, enabled, reason)
        log.warning("plug-in %s %s: %s", name, "enabled" if enabled else "disabled", reason)
        return True

    def _switch(self, name: str, enabled: bool, reason: str) -> None:
        self.plugin_switches[name] = PluginSwitch(enabled, reason)
        for strategy, plugin in self.strategy_plugins.items():
            if plugin != name:
                continue
            if enabled:
                self.runner.enable(strategy)
            else:
                self.runner.disable(strategy, f"plug-in {name} disabled: {reason}")
        for check_name, (plugin, check) in self.risk_checks.items():
            if plugin != name:
                continue
            registered = check_name in self.risk.custom_checks
            if enabled and not registered:
                self.risk.register_check(check_name, check)
            elif not enabled and registered:
                self.risk.unregister_check(check_name)

    # -- journal -------------------------------------------------------------

    def _journal(self, kind: str, payload: list[Any]) -> None:
        ts = self.clock() if self.clock is not None else None
        self.journal.append(kind, payload, ts)
        self.journal.sync()

    def restore(self, records: Iterable[tuple[str, Any]]) -> int:
        """Apply the journal's changes again, in order; return how many were applied.

        Call it before the strategies start, so a disabled plug-in's
        strategies never start.
        """
        applied = 0
        for kind, payload in records:
            if kind == "risk_limits":
                revision, raw, _reason = payload
                self._use_limits(parse_risk_config(raw, LIMITS_FIELD), revision)
            elif kind == "plugin_state":
                name, enabled, reason = payload
                self._switch(name, bool(enabled), f"{reason} (restored after a restart)")
            else:
                continue
            applied += 1
        if applied:
            switched_off = sorted(
                name for name in self.plugin_switches if not self.plugin_enabled(name)
            )
            log.info(
                "restored %d operator changes: limits at revision %d, plug-ins off: %s",
                applied,
                self.limits_revision,
                ", ".join(switched_off) or "none",
            )
        return applied


def _plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a TOML-shaped mapping as plain dicts (what the journal encodes)."""
    return {
        str(key): _plain(value) if isinstance(value, Mapping) else value
        for key, value in raw.items()
    }
