"""The plug-in host finds, vets and loads plug-ins, and never fails because of one."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from plugin_writer import PluginModules

from kernel.plugins.manager import ALLOW_ENV, BLOCK_ENV, PluginHost, PluginInfo, PluginStatus
from tradekernel_sdk import Strategy
from tradekernel_sdk.plugin import RegistrationKind

EVERYTHING = """
class Imbalance(Strategy):
    class Config(Strategy.Config, frozen=True):
        threshold_bps: int = 20

class Component:
    def __init__(self, **options):
        self.options = options

@hookimpl
def register_strategies(register):
    register("imbalance", Imbalance)

@hookimpl
def register_models(register):
    register("fair_value", Component)

@hookimpl
def register_detectors(register):
    register("spoofing", Component)

@hookimpl
def register_sentiment_sources(register):
    register("news", Component)

@hookimpl
def register_venues(register):
    register("kraken", Component)

def max_notional(request, context):
    return None

@hookimpl
def register_risk_checks(register):
    register("max_notional", max_notional)

@hookimpl
def register_features(register):
    register("ofi", Component)
"""

ONE_STRATEGY = """
class Momentum(Strategy):
    pass

@hookimpl
def register_strategies(register):
    register("momentum", Momentum)
"""


def host_for(*entry_points: EntryPoint, **options: Any) -> PluginHost:
    """Return a host that sees only ``entry_points`` and an empty environment."""
    options.setdefault("environ", {})
    return PluginHost(entry_points=lambda: entry_points, **options)


def info(host: PluginHost, name: str) -> PluginInfo:
    """Return what the host says about plug-in ``name``."""
    (found,) = [info for info in host.describe() if info.name == name]
    return found


class KernelStub:
    """A minimal read-only kernel view with a settable clock."""

    version = "0.1.0"
    api_version = "1.0"
    config_summary: Mapping[str, Any] = {"paper": {"enabled": True}}

    def __init__(self) -> None:
        self.now = 0

    def clock(self) -> int:
        return self.now


# Registration


def test_enabled_plugin_contributes_every_kind(plugin_modules: PluginModules) -> None:
    host = host_for(plugin_modules.write(EVERYTHING, name="everything"))

    strategies = host.strategies()
    assert list(strategies) == ["imbalance"]
    assert issubclass(strategies["imbalance"], Strategy)
    assert list(host.models()) == ["fair_value"]
    assert list(host.detectors()) == ["spoofing"]
    assert list(host.sentiment_sources()) == ["news"]
    assert list(host.venues()) == ["kraken"]
    assert list(host.risk_checks()) == ["max_notional"]
    assert list(host.features()) == ["ofi"]
    assert host.owner(RegistrationKind.VENUE, "kraken") == "everything"

    described = info(host, "everything")
    assert described.status is PluginStatus.ENABLED
    assert described.api_version == "1.0"
    assert described.reason == ""
    assert described.registers == {
        "strategies": ("imbalance",),
        "models": ("fair_value",),
        "detectors": ("spoofing",),
        "sentiment_sources": ("news",),
        "venues": ("kraken",),
        "risk_checks": ("max_notional",),
        "features": ("ofi",),
    }


def test_load_happens_once_and_lazily(plugin_modules: PluginModules) -> None:
    calls: list[int] = []
    entry_point = plugin_modules.write(ONE_STRATEGY, name="momentum")

    def entry_points() -> list[EntryPoint]:
        calls.append(1)
        return [entry_point]

    host = PluginHost(entry_points=entry_points, environ={})
    assert calls == []
    assert list(host.strategies()) == ["momentum"]
    host.load()
    host.describe()
    assert calls == [1]


def test_returned_registries_are_copies(plugin_modules: PluginModules) -> None:
    host = host_for(plugin_modules.write(ONE_STRATEGY, name="momentum"))
    host.strategies().clear()
    assert list(host.strategies()) == ["momentum"]


def test_misspelled_hook_is_refused_with_a_suggestion_and_the_host_continues(
    plugin_modules: PluginModules,
) -> None:
    misspelled = plugin_modules.write(
        """
        @hookimpl
        def register_strategy(register):
            pass
        """,
        name="typo",
    )
    host = host_for(misspelled, plugin_modules.write(ONE_STRATEGY, name="momentum"))

    refused = info(host, "typo")
    assert refused.status is PluginStatus.REFUSED
    assert refused.reason == (
        "'register_strategy' is not a tradekernel hook (did you mean 'register_strategies'?)"
    )
    assert list(host.strategies()) == ["momentum"]
    assert info(host, "momentum").status is PluginStatus.ENABLED


def test_hook_with_an_argument_the_spec_lacks_is_refused(plugin_modules: PluginModules) -> None:
    wrong_signature = plugin_modules.write(
        """
        @hookimpl
        def register_strategies(register, settings):
            pass
        """,
        name="wrong",
    )
    host = host_for(wrong_signature)

    refused = info(host, "wrong")
    assert refused.status is PluginStatus.REFUSED
    assert refused.reason.startswith("invalid hook implementation:")
    assert "settings" in refused.reason


def test_plugin_that_fails_to_import_is_refused(plugin_modules: PluginModules) -> None:
    broken = plugin_modules.write("raise RuntimeError('no credentials file')\n", name="broken")
    missing = EntryPoint(name="missing", value="tk_test_not_installed_at_all", group="tradekernel")
    host = host_for(broken, missing, plugin_modules.write(ONE_STRATEGY, name="momentum"))

    assert info(host, "broken").status is PluginStatus.REFUSED
    assert info(host, "broken").reason == "import failed: RuntimeError: no credentials file"
    assert info(host, "missing").reason.startswith("import failed: ModuleNotFoundError:")
    assert list(host.strategies()) == ["momentum"]


def test_registration_hook_that_raises_refuses_the_whole_plugin(
    plugin_modules: PluginModules,
) -> None:
    raising = plugin_modules.write(
        """
        class Component:
            pass

        @hookimpl
        def register_models(register):
            register("fair_value", Component)

        @hookimpl
        def register_venues(register):
            raise KeyError("KRAKEN_API_KEY")
        """,
        name="raising",
    )
    host = host_for(raising)

    refused = info(host, "raising")
    assert refused.status is PluginStatus.REFUSED
    assert refused.reason == "register_venues raised KeyError: 'KRAKEN_API_KEY'"
    assert host.models() == {}
    assert host.venues() == {}


@pytest.mark.parametrize(
    ("registration", "reason"),
    [
        (
            'register("not_a_strategy", dict)',
            "register_strategies: strategy 'not_a_strategy' must be a subclass of "
            "tradekernel_sdk.Strategy, got <class 'dict'>",
        ),
        (
            'register("market.maker", Strategy)',
            "register_strategies: strategy name 'market.maker' is not allowed: "
            "use letters, digits, '_' and '-'",
        ),
        (
            'register("twice", Strategy); register("twice", Strategy)',
            "register_strategies: strategy 'twice' registered twice",
        ),
    ],
    ids=["not-a-strategy", "dotted-name", "same-name-twice"],
)
def test_invalid_registration_is_refused(
    plugin_modules: PluginModules, registration: str, reason: str
) -> None:
    plugin = plugin_modules.write(
        f"""
        @hookimpl
        def register_strategies(register):
            {registration}
        """,
        name="invalid",
    )
    host = host_for(plugin)
    assert info(host, "invalid").status is PluginStatus.REFUSED
    assert info(host, "invalid").reason == reason
    assert host.strategies() == {}


def test_component_that_is_not_callable_is_refused(plugin_modules: PluginModules) -> None:
    plugin = plugin_modules.write(
        """
        @hookimpl
        def register_risk_checks(register):
            register("max_notional", 1_000_000)
        """,
        name="not-callable",
    )
    host = host_for(plugin)
    assert info(host, "not-callable").reason == (
        "register_risk_checks: risk check 'max_notional' must be callable, got 1000000"
    )


def test_same_strategy_name_from_two_plugins_refuses_the_later_naming_both(
    plugin_modules: PluginModules,
) -> None:
    first = plugin_modules.write(ONE_STRATEGY, name="alpha")
    second = plugin_modules.write(ONE_STRATEGY, name="beta")
    host = host_for(second, first)  # loaded sorted by (distribution, name): alpha first

    assert info(host, "alpha").status is PluginStatus.ENABLED
    refused = info(host, "beta")
    assert refused.status is PluginStatus.REFUSED
    assert refused.reason == (
        "strategy 'momentum' is already registered by plug-in 'alpha' "
        "(block one of them with TRADEKERNEL_PLUGINS_BLOCK=beta or the other name)"
    )
    assert host.owner(RegistrationKind.STRATEGY, "momentum") == "alpha"


def test_two_entry_points_with_one_name_keep_the_first(plugin_modules: PluginModules) -> None:
    first = plugin_modules.write(ONE_STRATEGY, name="same")
    second = plugin_modules.write(EVERYTHING, name="same")
    host = host_for(first, second)

    statuses = [(found.module, found.status) for found in host.describe()]
    assert statuses == [
        (first.value, PluginStatus.ENABLED),
        (second.value, PluginStatus.REFUSED),
    ]
    assert host.describe()[1].reason == f"the name 'same' is already taken by {first.value}"


# API version


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (
            "2.0",
            "plug-in 'future' targets plug-in API 2.0, but the kernel provides 1.0 "
            "(the major versions must match)",
        ),
        (
            "1.3",
            "plug-in 'future' targets plug-in API 1.3, but the kernel provides only 1.0 "
            "(the plug-in needs a newer kernel)",
        ),
        (
            "one",
            "plug-in 'future' declares TRADEKERNEL_API = 'one', "
            "which is not MAJOR.MINOR like '1.0'",
        ),
        (
            None,
            "plug-in 'future' declares no plug-in API version: "
            "add TRADEKERNEL_API = '1.0' to the entry-point module",
        ),
    ],
    ids=["major", "minor-too-new", "malformed", "missing"],
)
def test_incompatible_api_version_is_refused_naming_both_versions(
    plugin_modules: PluginModules, declared: str | None, reason: str
) -> None:
    host = host_for(plugin_modules.write(ONE_STRATEGY, name="future", api=declared))
    refused = info(host, "future")
    assert refused.status is PluginStatus.REFUSED
    assert refused.reason == reason
    assert host.strategies() == {}


def test_api_version_that_is_not_a_string_is_refused(plugin_modules: PluginModules) -> None:
    host = host_for(plugin_modules.write("TRADEKERNEL_API = 1.0\n", name="float", api=None))
    assert info(host, "float").reason == (
        "plug-in 'float' declares TRADEKERNEL_API = 1.0, which is not MAJOR.MINOR like '1.0'"
    )


def test_entry_point_that_resolves_to_none_is_refused(plugin_modules: PluginModules) -> None:
    module = plugin_modules.write("NOTHING = None\n", name="none").value
    host = host_for(EntryPoint("none", f"{module}:NOTHING", "tradekernel"))
    assert info(host, "none").reason == f"the entry point '{module}:NOTHING' resolves to None"


def test_older_minor_of_the_same_major_is_accepted(plugin_modules: PluginModules) -> None:
    host = host_for(plugin_modules.write(ONE_STRATEGY, name="older"), api_version="1.4")
    assert info(host, "older").status is PluginStatus.ENABLED
    assert info(host, "older").api_version == "1.0"


def test_api_version_is_read_from_an_object_plugins_module(
    plugin_modules: PluginModules,
) -> None:
    entry_point = plugin_modules.write(
        """
        class Plugin:
            @hookimpl
            def register_strategies(self, register):
                register("object_strategy", Strategy)

        plugin = Plugin()
        """,
        name="object",
    )
    object_entry_point = EntryPoint("object", f"{entry_point.value}:plugin", "tradekernel")
    host = host_for(object_entry_point)
    assert info(host, "object").status is PluginStatus.ENABLED
    assert list(host.strategies()) == ["object_strategy"]


# Operator control


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, ["alpha", "gamma"]),
        ({ALLOW_ENV: "gamma"}, ["gamma"]),
        ({ALLOW_ENV: " alpha , gamma ,"}, ["alpha", "gamma"]),
        ({ALLOW_ENV: ""}, []),
        ({BLOCK_ENV: "alpha"}, ["gamma"]),
        ({ALLOW_ENV: "alpha,gamma", BLOCK_ENV: "gamma"}, ["alpha"]),
    ],
    ids=["none", "allow-one", "allow-spaces", "allow-empty", "block-one", "block-wins"],
)
def test_environment_allow_and_block_lists(
    plugin_modules: PluginModules, environ: dict[str, str], enabled: list[str]
) -> None:
    alpha = plugin_modules.write(ONE_STRATEGY, name="alpha")
    gamma = plugin_modules.write(EVERYTHING, name="gamma")
    host = host_for(alpha, gamma, environ=environ)
    assert [
        found.name for found in host.describe() if found.status is PluginStatus.ENABLED
    ] == enabled


def test_disabled_plugin_says_why_and_is_never_imported(plugin_modules: PluginModules) -> None:
    never = plugin_modules.write("raise SystemExit('must not be imported')\n", name="never")
    blocked = plugin_modules.write("raise SystemExit('must not be imported')\n", name="blocked")
    host = host_for(never, blocked, environ={ALLOW_ENV: "other", BLOCK_ENV: "blocked"})

    assert info(host, "never").status is PluginStatus.DISABLED
    assert info(host, "never").reason == f"not in {ALLOW_ENV}"
    assert info(host, "blocked").reason == f"blocked by {BLOCK_ENV}"


def test_environment_reads_the_process_environment_by_default(
    plugin_modules: PluginModules, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCK_ENV, "alpha")
    alpha = plugin_modules.write(ONE_STRATEGY, name="alpha")
    host = PluginHost(entry_points=lambda: [alpha])
    assert info(host, "alpha").status is PluginStatus.DISABLED


def test_constructor_lists_combine_with_the_environment(plugin_modules: PluginModules) -> None:
    alpha = plugin_modules.write(ONE_STRATEGY, name="alpha")
    gamma = plugin_modules.write(EVERYTHING, name="gamma")
    host = host_for(alpha, gamma, allow=["alpha", "gamma"], environ={ALLOW_ENV: "gamma"})
    assert info(host, "alpha").reason == f"not in {ALLOW_ENV}"
    assert info(host, "gamma").status is PluginStatus.ENABLED

    host = host_for(alpha, gamma, allow=["alpha"], block=["gamma"])
    assert info(host, "alpha").status is PluginStatus.ENABLED
    assert info(host, "gamma").reason == "blocked by the block-list"

    host = host_for(alpha, gamma, allow=["gamma"])
    assert info(host, "alpha").reason == "not in the allow-list"


def test_allow_listed_plugin_that_is_missing_is_logged(
    plugin_modules: PluginModules, caplog: pytest.LogCaptureFixture
) -> None:
    alpha = plugin_modules.write(ONE_STRATEGY, name="alpha")
    with caplog.at_level(logging.WARNING, logger="kernel.plugins.manager"):
        host_for(alpha, environ={ALLOW_ENV: "alpha,alpah"}).load()
    assert "allow-listed plug-in 'alpah' is not installed" in caplog.text


def test_default_plugins_load_first_ignore_the_allow_list_and_can_be_blocked(
    plugin_modules: PluginModules,
) -> None:
    default = plugin_modules.write(ONE_STRATEGY, name="default")
    gamma = plugin_modules.write(EVERYTHING, name="gamma")

    host = host_for(gamma, default_plugins=[default.value], environ={ALLOW_ENV: "gamma"})
    assert [(found.name, found.source, found.status) for found in host.describe()] == [
        (default.value, "default", PluginStatus.ENABLED),
        ("gamma", "entry point", PluginStatus.ENABLED),
    ]

    # Replacing a default: block it, and a plug-in may register the same name.
    replacement = plugin_modules.write(ONE_STRATEGY, name="replacement")
    host = host_for(
        replacement, default_plugins=[default.value], environ={BLOCK_ENV: default.value}
    )
    assert info(host, default.value).status is PluginStatus.DISABLED
    assert host.owner(RegistrationKind.STRATEGY, "momentum") == "replacement"


# Lifecycle


LIFECYCLE = """
CALLS = []

@hookimpl
def kernel_started(kernel):
    CALLS.append(("started", kernel.version, kernel.clock()))

@hookimpl
def kernel_stopping(kernel):
    CALLS.append(("stopping", kernel.version, kernel.clock()))
"""

FAILING_LIFECYCLE = """
@hookimpl
def kernel_started(kernel):
    raise RuntimeError("model file missing")

@hookimpl
def kernel_stopping():
    raise RuntimeError("still broken")
"""


def test_lifecycle_hooks_run_in_load_order_and_stop_in_reverse(
    plugin_modules: PluginModules,
) -> None:
    first = plugin_modules.write(LIFECYCLE, name="a-first")
    second = plugin_modules.write(LIFECYCLE, name="b-second")
    host = host_for(second, first)
    kernel = KernelStub()

    kernel.now = 5
    assert host.started(kernel) == []
    kernel.now = 9
    assert host.stopping(kernel) == []

    first_calls = importlib.import_module(first.value).CALLS
    second_calls = importlib.import_module(second.value).CALLS
    assert first_calls == [("started", "0.1.0", 5), ("stopping", "0.1.0", 9)]
    assert second_calls == first_calls


def test_lifecycle_hook_that_raises_is_reported_and_others_still_run(
    plugin_modules: PluginModules, caplog: pytest.LogCaptureFixture
) -> None:
    failing = plugin_modules.write(FAILING_LIFECYCLE, name="a-failing")
    healthy = plugin_modules.write(LIFECYCLE, name="b-healthy")
    host = host_for(failing, healthy)

    with caplog.at_level(logging.ERROR, logger="kernel.plugins.manager"):
        started = host.started(KernelStub())
        stopping = host.stopping(KernelStub())

    assert [(f.plugin, f.hook, f.error) for f in started] == [
        ("a-failing", "kernel_started", "RuntimeError: model file missing")
    ]
    assert [(f.plugin, f.hook, f.error) for f in stopping] == [
        ("a-failing", "kernel_stopping", "RuntimeError: still broken")
    ]
    assert [call[0] for call in importlib.import_module(healthy.value).CALLS] == [
        "started",
        "stopping",
    ]
    assert "plug-in a-failing failed in kernel_started" in caplog.text


def test_refused_plugin_gets_no_lifecycle_calls(plugin_modules: PluginModules) -> None:
    refused = plugin_modules.write(
        LIFECYCLE
        + """
@hookimpl
def register_features(register):
    raise ValueError("bad")
""",
        name="refused",
    )
    host = host_for(refused)
    assert host.started(KernelStub()) == []
    assert importlib.import_module(refused.value).CALLS == []
