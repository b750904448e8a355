"""Component versions in the registry: refusals that change nothing, the journal, the stand-in,
and the ``[serving]`` tables that declare them."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from trading_stack import TradingStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components"))
from component_harness import link_to, served_in_thread

from kernel.journal import Journal
from kernel.service.builder import build
from kernel.service.config import ComponentSpec, ConfigError, load_config
from kernel.serving import ModelRegistry, RegistryError, Stage
from kernel.serving.config import ComponentVersionConfig, parse_serving_config
from kernel.serving.registry import Components
from serving.support import CLASSES, write_book_version

NAMES = frozenset({"direction_v2", "direction_v3"})


def records(journal: Journal) -> list[tuple[str, object]]:
    return [(record.kind, record.payload) for record in journal.records_since(0)]


def test_refused_component_commands_say_why_and_journal_nothing(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_book_version(root, "direction", "1")
    journal_path = tmp_path / "journal.tkj"

    async def main() -> None:
        with Journal.open(journal_path) as journal:
            lonely = ModelRegistry(root, journal, components=Components(NAMES))
            with pytest.raises(RegistryError, match="no in-process version to take its classes"):
                await lonely.load("direction", "2", "component:direction_v2")
            lonely.close()
            assert records(journal) == []

            registry = ModelRegistry(root, journal, components=Components(NAMES))
            await registry.load("direction", "1")
            registry.promote("direction", "1")
            before = records(journal)
            refusals = {
                "not_found": ("2", "component:elsewhere", ""),
                "invalid": ("2", "component:direction_v2", "ab" * 32),
            }
            for reason, (version, uri, sha256) in refusals.items():
                with pytest.raises(RegistryError) as raised:
                    await registry.load("direction", version, uri, sha256)
                assert raised.value.reason == reason, raised.value
            state = await registry.load("direction", "2", "component:direction_v2")
            assert (state.stage, state.classes, state.model.uri) == (
                Stage.LOADED,
                CLASSES,
                "component:direction_v2",
            )
            assert await registry.load("direction", "2", "component:direction_v2") is state
            with pytest.raises(RegistryError, match="already answers for direction:2") as raised:
                await registry.load("direction", "3", "component:direction_v2")
            assert raised.value.reason == "exists"
            with pytest.raises(RegistryError, match="is loaded from component:direction_v2"):
                await registry.load("direction", "2")
            after_load = records(journal)
            assert after_load[len(before) :] == [
                ("model_load", ["direction", "2", "component:direction_v2", ""])
            ]
            # Its component has not started: it may shadow, not act.
            for act in (
                lambda: registry.promote("direction", "2"),
                lambda: registry.canary("direction", "2", instruments=["binance.BTCUSDT"]),
            ):
                with pytest.raises(RegistryError, match="'direction_v2' is not started") as raised:
                    act()
                assert raised.value.reason == "precondition"
            assert records(journal) == after_load
            assert registry.shadow("direction", "2").stage is Stage.SHADOW
            registry.close()

    asyncio.run(main())


def test_a_restart_restores_component_stages_and_the_stand_in(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_book_version(root, "direction", "1")
    write_book_version(root, "direction", "4")
    journal_path = tmp_path / "journal.tkj"
    history = [
        ("model_load", ["direction", "1", "", ""]),
        ("model_promote", ["direction", "1"]),
        ("model_load", ["direction", "2", "component:direction_v2", ""]),
        ("model_load", ["direction", "3", "component:direction_v3", ""]),
        ("model_load", ["direction", "4", "", ""]),
        ("model_promote", ["direction", "2"]),  # a component acts; 1 is the stand-in
        ("model_shadow", ["direction", "4"]),
        ("model_canary", ["direction", "3", 0, ["binance.ETHUSDT"]]),
    ]

    async def main() -> None:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal, components=Components(NAMES))
            assert await registry.restore(history) == len(history)
            assert {s.version: s.stage for s in registry.versions("direction")} == {
                "1": Stage.RETIRED,
                "2": Stage.PRODUCTION,
                "3": Stage.CANARY,
                "4": Stage.SHADOW,
            }
            assert registry.stand_in("direction") is registry.get("direction", "1")
            registry.rollback("direction", "2")
            assert registry.route("direction").production is registry.get("direction", "1")
            registry.close()

            strict = ModelRegistry(
                root, journal, components=Components(NAMES), fallbacks={"direction": "none"}
            )
            await strict.restore(history)
            assert strict.stand_in("direction") is None  # fallback = "none": the signal stops
            strict.close()

            gone = ModelRegistry(root, journal, components=Components(frozenset({"direction_v3"})))
            await gone.restore(history)
            assert [s.version for s in gone.versions("direction")] == ["1", "3", "4"]
            assert any("direction_v2" in failure for failure in gone.restore_failures)
            gone.close()

    asyncio.run(main())


def test_the_serving_table_declares_component_versions_and_refuses_bad_ones(
    tmp_path: Path,
) -> None:
    def parsed(body: str) -> object:
        import tomllib

        return parse_serving_config(tomllib.loads(textwrap.dedent(body))["serving"], tmp_path)

    config = parsed("""
        [serving]
        enabled = true
        [[serving.models]]
        name = "direction"
        fallback = "none"
        classes = ["down", "stationary", "up"]
        [[serving.models.components]]
        version = "2"
        component = "direction_v2"
    """)
    (model,) = config.models  # type: ignore[attr-defined]
    assert model.components == (ComponentVersionConfig("2", "direction_v2"),)
    assert (model.fallback, model.classes) == ("none", CLASSES)
    refusals = {
        'fallback = "maybe"': "serving.models[0].fallback: 'in_process' or 'none'",
        '[[serving.models.components]]\nversion = "2"': (
            "serving.models[0].components[0].component: required"
        ),
        '[[serving.models.components]]\nversion = "2"\ncomponent = "a"\nport = 1': (
            "serving.models[0].components[0].port: unknown field"
        ),
    }
    for body, message in refusals.items():
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parsed(f'[serving]\n[[serving.models]]\nname = "direction"\n{body}\n')

    kernel = tmp_path / "kernel.toml"
    kernel.write_text(
        textwrap.dedent(f"""
        [kernel]
        state_dir = "{tmp_path / "state"}"
        [serving]
        enabled = true
        [[serving.models]]
        name = "direction"
        [[serving.models.components]]
        version = "2"
        component = "direction_v2"
    """)
    )
    with pytest.raises(ConfigError, match=r"no component 'direction_v2' in \[\[components\]\]"):
        build(load_config(kernel), progress=False)


class Watcher:
    """A real component of kind detector, which answers nothing."""

    kind = "detector"


def test_a_component_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_book_version(root, "direction", "1")
    stack = TradingStack(tmp_path / "journal.tkj")
    links: dict[str, object] = {}

    async def main() -> None:
        registry = ModelRegistry(root, stack.journal, components=Components(NAMES, lambda: links))
        await registry.load("direction", "1")
        with served_in_thread(Watcher()) as (address, _):
            link = link_to(stack, ComponentSpec(name="direction_v2", endpoint=address))
            links["direction_v2"] = link
            link.start()
            await link.wait_up(10)
            with pytest.raises(RegistryError, match="'direction_v2' is a detector, not a model"):
                await registry.load("direction", "2", "component:direction_v2")
            await link.stop()
        assert [s.version for s in registry.versions("direction")] == ["1"]
        registry.close()

    asyncio.run(main())
    stack.close()
