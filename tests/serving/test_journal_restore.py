"""Every registry change is journaled before it acts, and a restart restores the stages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel.journal import Journal
from kernel.serving import ModelRegistry, RegistryError, Stage
from serving.support import write_book_version


def stages(registry: ModelRegistry) -> dict[str, tuple[str, int, list[str]]]:
    return {
        state.version: (state.stage.value, state.canary_bps, sorted(state.canary_instruments))
        for state in registry.versions("direction")
    }


def repository(tmp_path: Path, count: int) -> Path:
    root = tmp_path / "models"
    for version in range(1, count + 1):
        write_book_version(root, "direction", str(version))
    return root


def records(path: Path) -> list[tuple[str, object]]:
    with Journal.open(path) as journal:
        return [(record.kind, record.payload) for record in journal.records_since(0)]


def test_a_restart_restores_production_shadow_canary_and_the_rollback_history(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path, 4)
    journal_path = tmp_path / "journal.tkj"

    async def before_restart() -> dict[str, tuple[str, int, list[str]]]:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal)
            for version in ("1", "2", "3", "4"):
                await registry.load("direction", version)
            registry.promote("direction", "1")
            registry.promote("direction", "2")
            registry.shadow("direction", "3")
            registry.canary("direction", "4", 1_500, ["binance.ETHUSDT"])
            registry.close()
            return stages(registry)

    async def after_restart() -> None:
        history = records(journal_path)
        with Journal.open(journal_path) as journal:
            restored = ModelRegistry(root, journal)
            assert await restored.restore(history) == 8
            assert stages(restored) == before
            assert restored.restore_failures == []
            route = restored.route("direction")
            assert route.acting("binance.ETHUSDT") is restored.get("direction", "4")
            restored.rollback("direction", "2")  # the history came back too
            assert restored.route("direction").production is restored.get("direction", "1")
            restored.close()

    before = asyncio.run(before_restart())
    assert before == {
        "1": ("retired", 0, []),
        "2": ("production", 0, []),
        "3": ("shadow", 0, []),
        "4": ("canary", 1_500, ["binance.ETHUSDT"]),
    }
    asyncio.run(after_restart())
    assert records(journal_path)[-1] == ("model_rollback", ["direction", "2"])


def test_the_journal_holds_each_change_before_the_registry_shows_it(tmp_path: Path) -> None:
    root = repository(tmp_path, 2)
    journal_path = tmp_path / "journal.tkj"

    class WatchingJournal:
        """A real journal that checks, at each append, that the registry has not changed yet."""

        def __init__(self, journal: Journal) -> None:
            self.journal = journal
            self.registry: ModelRegistry | None = None
            self.seen: list[tuple[str, str]] = []

        def append(self, kind: str, payload: object, ts_ns: int | None = None) -> int:
            assert self.registry is not None and isinstance(payload, list)
            name, version = payload[0], payload[1]
            loaded = {s.version: s.stage for s in self.registry.versions(name)}
            self.seen.append((kind, str(loaded.get(version))))
            return self.journal.append(kind, payload, ts_ns)

        def sync(self) -> int:
            return self.journal.sync()

    async def main() -> list[tuple[str, str]]:
        with Journal.open(journal_path) as journal:
            watching = WatchingJournal(journal)
            registry = ModelRegistry(root, watching)
            watching.registry = registry
            await registry.load("direction", "1")
            await registry.load("direction", "2")
            registry.promote("direction", "1")
            registry.shadow("direction", "2")
            registry.promote("direction", "2")
            registry.rollback("direction", "2")
            registry.close()
            return watching.seen

    seen = asyncio.run(main())
    assert seen == [
        ("model_load", "None"),
        ("model_load", "None"),
        ("model_promote", str(Stage.LOADED)),
        ("model_shadow", str(Stage.LOADED)),
        ("model_promote", str(Stage.SHADOW)),
        ("model_rollback", str(Stage.PRODUCTION)),
    ]
    assert [kind for kind, _ in records(journal_path)] == [kind for kind, _ in seen]


def test_a_version_damaged_between_restarts_is_left_out_and_the_rest_restored(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path, 2)
    journal_path = tmp_path / "journal.tkj"

    async def before_restart() -> None:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal)
            await registry.load("direction", "1")
            await registry.load("direction", "2")
            registry.promote("direction", "1")
            registry.shadow("direction", "2")
            registry.close()

    asyncio.run(before_restart())
    model = root / "direction" / "2" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-8])

    async def after_restart() -> ModelRegistry:
        registry = ModelRegistry(root)
        assert await registry.restore(records(journal_path)) == 2
        return registry

    restored = asyncio.run(after_restart())
    assert stages(restored) == {"1": ("production", 0, [])}
    assert len(restored.restore_failures) == 2
    assert "is damaged or was replaced" in restored.restore_failures[0]
    assert "no loaded version '2'" in restored.restore_failures[1]


def test_refused_commands_change_nothing_and_journal_nothing(tmp_path: Path) -> None:
    root = repository(tmp_path, 2)
    journal_path = tmp_path / "journal.tkj"

    async def main() -> list[str]:
        with Journal.open(journal_path) as journal:
            registry = ModelRegistry(root, journal)
            await registry.load("direction", "1")
            registry.promote("direction", "1")
            before = stages(registry)
            refusals = []
            commands: tuple[Callable[[], object], ...] = (
                lambda: registry.promote("direction", "9"),
                lambda: registry.shadow("direction", "1"),
                lambda: registry.canary("direction", "1", 100),
                lambda: registry.canary("direction", "1", 10_001),
                lambda: registry.canary("other", "1", 100),
                lambda: registry.rollback("direction", "1"),
            )
            for command in commands:
                with pytest.raises(RegistryError) as refused:
                    command()
                refusals.append(refused.value.reason)
            for bad in (("direction", "../1"), ("direction", "7")):
                with pytest.raises(RegistryError) as refused:
                    await registry.load(*bad)
                refusals.append(refused.value.reason)
            assert stages(registry) == before
            registry.close()
            return refusals

    assert asyncio.run(main()) == [
        "not_found",
        "precondition",
        "precondition",
        "invalid",
        "not_found",
        "precondition",
        "invalid",
        "not_found",
    ]
    assert [kind for kind, _ in records(journal_path)] == ["model_load", "model_promote"]
