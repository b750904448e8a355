"""Retraining a served model in the running kernel: into shadow, never into production.

A model with ``[serving.models.retrain]`` is trained again on the newest
recordings of a folder when its production version's drift monitor alerts
(``on_drift``) and, optionally, every ``every_s`` seconds. The training runs
in a child process (:func:`kernel.models.retrain.retrain_async`; the kernel
never imports torch) at a lower CPU priority, while the event loop goes on.
Its result, the model's next version in the repository, is loaded and put in
shadow through the registry, which journals both before they act, so a
restart restores the shadow. Production is never touched: a failure is
logged with the reason and counted, and production keeps serving. At most
one retraining per model runs at a time, and two starts are at least
``min_interval_s`` apart; a trigger refused for either reason is counted.

The drift monitor reads the production version's ``feature_reference``
(streaming feature columns) and a feature engine of its own, with the
version's feature set, on a private bus fed the main bus's market events, so
its vectors never reach the subscribers of ``features.<venue>.<symbol>``. A
promotion rebuilds both for the new production version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kernel.bus import DEFAULT_PRIORITY, Bus
from kernel.features.drift import DriftAlert, DriftConfig, DriftMonitor
from kernel.features.engine import BookLookup, FeatureEngine
from kernel.features.events import EVENT_PATTERNS
from kernel.metrics import MetricsServer
from kernel.models.repository import ModelRepository
from kernel.models.retrain import RetrainError, RetrainResult, recent_recordings, retrain_async
from kernel.serving.config import RetrainSettings, ServingConfig
from kernel.serving.registry import ModelRegistry, RegistryError, VersionState
from tradekernel_sdk.features import Feature, FeatureReference, FeatureSet

__all__ = ["DriftWatch", "ModelRetrainer", "start_retrainers", "stop_retrainers"]

log = logging.getLogger(__name__)

DRIFT_PRIORITY: Final = DEFAULT_PRIORITY + 10
"""Drift features update after strategies and models: they are not on the tick path."""

# The private bus's topic for each forwarded kind of event (the engine reads only the event).
_PRIVATE_TOPICS: Final = ("data.snapshot", "data.book", "data.status", "data.trade", "data.bar")


class DriftWatch:
    """The drift monitor of a model's production version, fed by its own feature engine."""

    def __init__(
        self,
        name: str,
        registry: ModelRegistry,
        bus: Bus,
        *,
        config: DriftConfig,
        on_alert: Callable[[DriftAlert], None],
        books: BookLookup | None = None,
        instruments: Iterable[tuple[str, str]] = (),
        features: Callable[[], Mapping[str, type[Feature]]] | None = None,
    ) -> None:
        self.name = name
        self.registry = registry
        self.bus = bus
        self.config = config
        self.on_alert = on_alert
        self.books = books
        self.instruments = frozenset(instruments) or None
        self._features = features
        self.monitor: DriftMonitor | None = None
        self.engine: FeatureEngine | None = None
        self.version: VersionState | None = None
        """The production version the monitor is built for."""
        self.unmonitored = "no market event seen yet"
        """Why the production version is not monitored ('' when it is)."""
        self._private = Bus()
        self._handlers: list[tuple[str, Callable[[Any], None]]] = []
        self._built_for: object = None

    def start(self) -> None:
        """Forward the market events to the private bus."""
        for pattern, topic in zip(EVENT_PATTERNS, _PRIVATE_TOPICS, strict=True):
            handler = self._forwarder(f"{topic}.x.x")
            self.bus.subscribe(pattern, handler, priority=DRIFT_PRIORITY)
            self._handlers.append((pattern, handler))

    def stop(self) -> None:
        """Stop forwarding; the monitor's figures stay readable."""
        for pattern, handler in self._handlers:
            self.bus.unsubscribe(pattern, handler)
        self._handlers.clear()
        if self.engine is not None:
            self.engine.stop()

    def _forwarder(self, topic: str) -> Callable[[Any], None]:
        private = self._private

        def forward(event: Any) -> None:
            production = self.registry.route(self.name).production
            if production is not self._built_for:
                self._build(production)
            if self.engine is not None:
                private.publish(topic, event)

        return forward

    def _build(self, production: VersionState | None) -> None:
        """Monitor ``production`` from now on (a promotion starts a fresh window)."""
        self._built_for = production
        if self.engine is not None:
            self.engine.stop()
            self._private.unsubscribe("features.>", self._observe)
        self.engine = self.monitor = None
        self.version = production
        if production is None:
            self.unmonitored = "no production version"
            return
        metadata = getattr(production.model, "metadata", None) or {}
        try:
            reference = msgspec.convert(metadata["feature_reference"], FeatureReference)
            feature_set = msgspec.convert(metadata["feature_spec"]["feature_set"], FeatureSet)
            registry = self._features() if self._features is not None else _registered()
            engine = FeatureEngine(
                self._private,
                feature_set,
                registry,
                books=self.books,
                instruments=self.instruments,
            )
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as error:
            self.unmonitored = (
                f"version {production.version} has no usable drift reference "
                f"(feature_reference, feature_spec.feature_set): {error}"
            )
            log.warning("model %s: drift not monitored: %s", self.name, self.unmonitored)
            return
        monitor = DriftMonitor(reference, self.config, model=self.name)
        monitor.alert_listeners.append(self.on_alert)
        self._private.subscribe("features.>", self._observe)
        engine.start()
        self.engine, self.monitor, self.unmonitored = engine, monitor, ""
        log.info("model %s: drift of version %s monitored", self.name, production.version)

    def _observe(self, vector: Any) -> None:
        if self.monitor is not None:
            self.monitor.observe(vector)


def _registered() -> Mapping[str, type[Feature]]:
    from kernel.models.features import registered_features  # noqa: PLC0415 - loads plug-ins

    return registered_features()


class ModelRetrainer:
    """Retrain one served model into shadow on drift or on a timer, one run at a time."""

    def __init__(
        self,
        name: str,
        settings: RetrainSettings,
        registry: ModelRegistry,
        *,
        repository: ModelRepository | None = None,
        clock: Callable[[], float] = time.monotonic,
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry
        self.repository = repository or ModelRepository(registry.repository)
        self.clock = clock
        self.python = python
        self.watch: DriftWatch | None = None
        self.runs: dict[str, int] = {}
        """Started runs by trigger (``drift``, ``timer``, ``request``)."""
        self.shadowed = 0
        self.failures = 0
        self.skipped: dict[str, int] = {"running": 0, "interval": 0}
        self.last_started: float | None = None
        self.last_error = ""
        self.last_result: RetrainResult | None = None
        self.task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(
        self,
        bus: Bus | None = None,
        *,
        books: BookLookup | None = None,
        instruments: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Watch drift on ``bus`` (``on_drift``) and start the timer (``every_s``)."""
        if self.settings.on_drift and bus is not None:
            self.watch = DriftWatch(
                self.name,
                self.registry,
                bus,
                config=self.settings.drift,
                on_alert=self.on_alert,
                books=books,
                instruments=instruments,
            )
            self.watch.start()
        if self.settings.every_s > 0:
            self._timer = asyncio.get_running_loop().create_task(
                self._every(self.settings.every_s), name=f"retrain-timer:{self.name}"
            )

    async def stop(self) -> None:
        """Stop watching; a retraining under way is cancelled and its process killed."""
        if self.watch is not None:
            self.watch.stop()
        for task in (self._timer, self.task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.request("timer", f"every {seconds:g} s")

    # -- triggers --------------------------------------------------------------

    def on_alert(self, alert: DriftAlert) -> None:
        """Start a retraining for one drift alert (unless one runs or the last was too recent)."""
        self.request(
            "drift",
            f"{alert.feature} on {alert.venue}.{alert.symbol} has {alert.statistic.upper()} "
            f"{alert.value:.4f} above {alert.threshold:g}",
        )

    def request(self, trigger: str, reason: str) -> asyncio.Task[None] | None:
        """Start a retraining now; return its task, or None (counted) when refused."""
        if self.task is not None and not self.task.done():
            self.skipped["running"] += 1
            log.info("model %s: retraining already under way; %s not acted on", self.name, reason)
            return None
        now = self.clock()
        interval = self.settings.min_interval_s
        if self.last_started is not None and now - self.last_started < interval:
            self.skipped["interval"] += 1
            log.info(
                "model %s: last retraining started %.0f s ago (min_interval_s %g); %s not acted on",
                self.name,
                now - self.last_started,
                interval,
                reason,
            )
            return None
        self.last_started = now
        self.runs[trigger] = self.runs.get(trigger, 0) + 1
        self.task = asyncio.get_running_loop().create_task(
            self._run(reason), name=f"retrain:{self.name}"
        )
        return self.task

    # -- one run ---------------------------------------------------------------

    async def _run(self, reason: str) -> None:
        production = self.registry.route(self.name).production
        serving = production.version if production is not None else "none"
        log.warning("model %s: retraining (%s)", self.name, reason)
        try:
            if production is None:
                raise RetrainError("no production version to retrain from")
            settings = self.settings
            files = await asyncio.to_thread(recent_recordings, settings.recordings, settings.last)
            result = await retrain_async(
                f"{self.name}:{production.version}",
                files,
                self.repository,
                python=self.python,
                niceness=settings.niceness,
                timeout_s=settings.timeout_s,
            )
            stored = result.version
            label = str(stored.version)
            # Both journaled by the registry before they act; production is left alone.
            await self.registry.load(self.name, label, "", str(stored.metadata["model_sha256"]))
            self.registry.shadow(self.name, label)
        except asyncio.CancelledError:
            raise
        except (RetrainError, RegistryError, OSError, KeyError) as error:
            self.failures += 1
            self.last_error = str(error)
            log.error(
                "model %s: retraining failed, production %s keeps serving: %s",
                self.name,
                serving,
                error,
            )
            return
        self.shadowed += 1
        self.last_error = ""
        self.last_result = result
        log.warning(
            "model %s: retrained version %s (as %s, on %d file(s)%s, %.1f s) is in shadow "
            "beside production %s",
            self.name,
            label,
            production.version,
            len(result.files),
            ", the same data" if result.same_data else "",
            result.seconds,
            serving,
        )

    # -- metrics ---------------------------------------------------------------

    def families(self) -> list[Any]:
        """Return the retraining counters and the drift monitor's figures."""
        runs = CounterMetricFamily(
            "tradekernel_model_retrain_runs", "Retrainings started", labels=["model", "trigger"]
        )
        for trigger, count in self.runs.items():
            runs.add_metric([self.name, trigger], count)
        shadowed = CounterMetricFamily(
            "tradekernel_model_retrain_shadowed",
            "Retrained versions loaded and put in shadow",
            labels=["model"],
        )
        shadowed.add_metric([self.name], self.shadowed)
        failures = CounterMetricFamily(
            "tradekernel_model_retrain_failures",
            "Retrainings that failed; production kept serving",
            labels=["model"],
        )
        failures.add_metric([self.name], self.failures)
        skipped = CounterMetricFamily(
            "tradekernel_model_retrain_skipped",
            "Triggers not acted on: a retraining was running, or the last started too recently",
            labels=["model", "reason"],
        )
        for why, count in self.skipped.items():
            skipped.add_metric([self.name, why], count)
        running = GaugeMetricFamily(
            "tradekernel_model_retrain_running", "1 while a retraining runs", labels=["model"]
        )
        running.add_metric([self.name], float(self.task is not None and not self.task.done()))
        found: list[Any] = [runs, shadowed, failures, skipped, running]
        if self.watch is not None and self.watch.monitor is not None:
            found.extend(self.watch.monitor._families())
        return found


def start_retrainers(
    config: ServingConfig,
    registry: ModelRegistry,
    bus: Bus,
    *,
    books: BookLookup | None = None,
    metrics: MetricsServer | None = None,
) -> dict[str, ModelRetrainer]:
    """Start a retrainer for each served model with retraining enabled."""
    started: dict[str, ModelRetrainer] = {}
    for model in config.models:
        settings = model.retrain
        if settings is None or not settings.enabled:
            continue
        retrainer = ModelRetrainer(model.name, settings, registry)
        retrainer.start(bus, books=books, instruments=model.instruments)
        if metrics is not None:
            metrics.collector.add_source(retrainer.families)
        started[model.name] = retrainer
        log.info(
            "model %s: retrains on %s (newest %d file(s))%s%s, at most every %g s, into shadow",
            model.name,
            settings.recordings,
            settings.last,
            " on drift" if settings.on_drift else "",
            f" every {settings.every_s:g} s" if settings.every_s else "",
            settings.min_interval_s,
        )
    return started


async def stop_retrainers(retrainers: Mapping[str, ModelRetrainer]) -> None:
    """Stop every retrainer; a retraining under way is cancelled."""
    for retrainer in retrainers.values():
        await retrainer.stop()
