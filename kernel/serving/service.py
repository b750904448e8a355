"""Serving as a kernel component: the registry on the trading journal, one engine per model.

At start the registry replays the journal's model changes (loads, promotions,
shadows, canaries, rollbacks), so a restart serves what was served; a model
with a configured ``version`` and no production version after that loads and
promotes it (journaled like any promotion); then configured component
versions (``[[serving.models.components]]``) are loaded when missing. Then each
model's engine and its out-of-process side
(:class:`~kernel.serving.remote.ComponentModels`) subscribe to the bus. It
starts after trading (the journal is open) and before the replays and live
feeds that bring data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kernel.bus import Bus
from kernel.metrics import MetricsServer
from kernel.serving.config import ServingConfig
from kernel.serving.engine import BookLookup, ServingEngine
from kernel.serving.registry import COMPONENT_URI, Components, ModelRegistry, RegistryError
from kernel.serving.retrain import ModelRetrainer, start_retrainers, stop_retrainers

__all__ = ["ServingComponent"]

log = logging.getLogger(__name__)


class ServingComponent:
    """Build the registry and the engines when started; stop them when stopped."""

    name = "serving"

    def __init__(
        self,
        config: ServingConfig,
        bus: Bus,
        *,
        journal: Callable[[], Any],
        books: BookLookup,
        metrics: MetricsServer | None = None,
        components: Components | None = None,
    ) -> None:
        self.config = config
        self.components = components
        self.remotes: dict[str, Any] = {}
        """Each model's :class:`~kernel.serving.remote.ComponentModels`."""
        self.bus = bus
        self.journal = journal
        self.books = books
        self.metrics = metrics
        self.registry: ModelRegistry | None = None
        self.engines: dict[str, ServingEngine] = {}
        self.restored = 0
        self.retrainers: dict[str, ModelRetrainer] = {}
        """Models retrained into shadow (``[serving.models.retrain]``)."""

    async def start(self) -> None:
        """Restore the registry from the journal, load configured versions, start the engines."""
        config = self.config
        journal = self.journal()
        registry = ModelRegistry(
            config.repository,
            journal,
            threads=config.threads,
            components=self.components,
            classes={model.name: model.classes for model in config.models if model.classes},
            fallbacks={model.name: model.fallback for model in config.models},
        )
        if journal is not None:
            records = [(record.kind, record.payload) for record in journal.records_since(0)]
            self.restored = await registry.restore(records)
        for model in config.models:
            if model.version and registry.route(model.name).production is None:
                try:
                    await registry.load(model.name, model.version)
                    registry.promote(model.name, model.version)
                except RegistryError as error:  # the kernel runs on; the model waits
                    log.error(
                        "serving.models %s: version %s not served: %s",
                        model.name,
                        model.version,
                        error,
                    )
            for item in model.components:  # after the in-process version: its classes
                try:
                    await registry.load(model.name, item.version, COMPONENT_URI + item.component)
                except RegistryError as error:
                    log.error(
                        "serving.models %s: version %s not served: %s",
                        model.name,
                        item.version,
                        error,
                    )
        from kernel.serving.remote import ComponentModels  # noqa: PLC0415 - the gRPC side

        for model in config.models:
            remote = ComponentModels(
                self.bus, registry, model.name, instruments=model.instruments or None
            )
            self.remotes[model.name] = remote
            engine = ServingEngine(
                self.bus,
                registry,
                model.name,
                instruments=model.instruments or None,
                books=self.books,
                levels=config.levels,
                batching=model.batching,
                max_batch=model.max_batch,
                remote=remote,
            )
            engine.start()
            self.engines[model.name] = engine
        if self.metrics is not None:
            registry.register_metrics(self.metrics.collector)
            self.metrics.collector.add_counters(
                "model_fallbacks",
                "Times a model's answering component went down and another version took over",
                "model",
                lambda: {name: float(r.stats.fallbacks) for name, r in self.remotes.items()},
            )
        self.registry = registry
        self.retrainers = start_retrainers(
            config, registry, self.bus, books=self.books, metrics=self.metrics
        )
        log.info(
            "serving %s from %s (%d journaled changes restored)",
            ", ".join(self.engines) or "no model",
            config.repository,
            self.restored,
        )

    async def stop(self) -> None:
        """Score what is queued, unsubscribe, stop the loading thread."""
        await stop_retrainers(self.retrainers)  # a retraining under way is cancelled
        for engine in self.engines.values():
            engine.stop()
        for remote in self.remotes.values():
            remote.close()
        if self.registry is not None:
            self.registry.close()

    def report(self) -> dict[str, Any]:
        """Return each engine's counts and per-version figures, and its components' counts."""
        return {
            name: {**engine.report(), "components": self.remotes[name].report()}
            for name, engine in self.engines.items()
        }

    def health(self) -> tuple[str, str]:
        """Return ``(state, detail)`` for GetStatus: which component versions are down."""
        down = [
            f"{name}: component version {version} is down, {instead}"
            for name, remote in self.remotes.items()
            for version, instead in remote.down.items()
        ]
        return "RUNNING", "; ".join(down)
