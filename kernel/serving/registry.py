"""The model registry: versions loaded in the background, validated, and routed by stage.

Each model ``name`` has at most one **production** version, one **shadow**
(runs beside production on the same inputs; its answers are recorded, never
acted on) and one **canary** (answers in place of production for chosen
instruments, or for a share of them chosen by a hash of the instrument, so an
instrument always goes the same way). Versions replaced by a promotion or a
rollback are **retired** and kept, so a rollback can return to them.

The serving engine reads a model's :class:`Route`, an immutable snapshot,
once per inference: a promotion builds a new route and assigns it in one
step, so an inference already under way finishes on the version it started
with and the next one sees the new route.

Loading (:meth:`ModelRegistry.load`) opens and validates the version in a
worker thread, never on the event loop; a refused version changes nothing
and the error says why.

A version may also be answered out of process: ``uri = "component:NAME"``
names a model component of ``[[components]]`` (:class:`ComponentVersion`).
The registry owns its stage exactly as an in-process version's; the kernel's
side of the component (:class:`kernel.serving.remote.ComponentModels`) reads
the route and answers. While a production component is down, the last
in-process production version answers in its place (:meth:`ModelRegistry.stand_in`),
unless the model's fallback is ``none``. Every change is journaled, and the journal synced,
before it takes effect; :meth:`ModelRegistry.restore` replays those records
after a restart (records kind → payload):

``model_load``      ``[name, version, uri, sha256]`` (uri ``component:NAME``, sha256 ``""``
                    for a component version)
``model_promote``   ``[name, version]``
``model_shadow``    ``[name, version]``
``model_canary``    ``[name, version, canary_bps, instruments]``
``model_rollback``  ``[name, from_version]``
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from kernel.metrics import KernelCollector, LatencyHistogram
from kernel.serving.session import OnnxVersion, VersionFiles, VersionRejected, open_version

__all__ = [
    "COMPONENT_URI",
    "MAX_BPS",
    "ComponentVersion",
    "Components",
    "ModelRegistry",
    "RegistryError",
    "Route",
    "Stage",
    "VersionMetrics",
    "VersionState",
    "canary_bucket",
]

log = logging.getLogger(__name__)

MAX_BPS: Final = 10_000
MODEL_FILE: Final = "model.onnx"
METADATA_FILE: Final = "metadata.json"
_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]+$")
COMPONENT_URI: Final = "component:"
"""A version's uri naming the out-of-process component that answers for it."""
FALLBACKS: Final = ("in_process", "none")


class Stage(enum.Enum):
    """Where a version stands; the values are the API's stage names."""

    LOADED = "loaded"
    SHADOW = "shadow"
    CANARY = "canary"
    PRODUCTION = "production"
    RETIRED = "retired"


class RegistryError(Exception):
    """A registry command refused; ``reason`` is ``not_found``, ``invalid``, ``precondition``
    or ``exists`` (the API maps them to status codes)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Journal(Protocol):
    def append(self, kind: str, payload: Any, ts_ns: int | None = None) -> int: ...

    def sync(self) -> int: ...


@dataclass
class VersionMetrics:
    """What one version did: latency, answers by class, agreement with production, errors."""

    classes: tuple[str, ...]
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    by_class: list[int] = field(default_factory=list)
    compared: int = 0
    agreed: int = 0
    errors: int = 0
    published: int = 0
    """Answers acted on: published as the model's prediction."""

    def __post_init__(self) -> None:
        self.by_class = [0] * len(self.classes)

    @property
    def predictions(self) -> int:
        """Return how many answers the version gave."""
        return sum(self.by_class)

    @property
    def agreement(self) -> float | None:
        """Return the share of compared answers equal to production's, or None before any."""
        return None if self.compared == 0 else self.agreed / self.compared


@dataclass
class Components:
    """The kernel's out-of-process components, as the registry needs them.

    ``names`` are the configured ones (``[[components]]``); ``links`` returns
    the kernel's :class:`~kernel.components.ComponentLink` by name once they
    run (they start after serving).
    """

    names: frozenset[str]
    links: Callable[[], Mapping[str, Any]] = dict

    def link(self, name: str) -> Any | None:
        """Return the link to component ``name``, or None before it runs."""
        return self.links().get(name)


@dataclass(frozen=True)
class ComponentVersion:
    """A version answered by an out-of-process model component; nothing loads in the kernel."""

    name: str
    version: str
    component: str
    classes: tuple[str, ...]
    components: Components
    loaded_ns: int = field(default_factory=time.time_ns)
    sha256: str = ""

    @property
    def uri(self) -> str:
        """Return ``component:NAME``."""
        return COMPONENT_URI + self.component

    def up(self) -> bool:
        """Return whether the component's session is up now."""
        link = self.components.link(self.component)
        return link is not None and getattr(link.state, "value", "") == "up"

    def down_reason(self) -> str:
        """Return why the component is not up ("" when it is)."""
        link = self.components.link(self.component)
        if link is None:
            return "not started"
        if self.up():
            return ""
        return str(link.down_reason or link.state.value)


@dataclass
class VersionState:
    """A loaded version, its stage and its metrics."""

    model: OnnxVersion | ComponentVersion
    stage: Stage
    metrics: VersionMetrics
    ts_stage: int
    canary_bps: int = 0
    canary_instruments: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """Return the model's name."""
        return self.model.name

    @property
    def version(self) -> str:
        """Return the version."""
        return self.model.version

    @property
    def component(self) -> ComponentVersion | None:
        """Return the component answering for it, None for an in-process version."""
        model = self.model
        return model if isinstance(model, ComponentVersion) else None

    @property
    def onnx(self) -> OnnxVersion:
        """Return the in-process version (a TypeError for a component version)."""
        model = self.model
        if not isinstance(model, OnnxVersion):
            raise TypeError(f"{self.name}:{self.version} is answered by {model.uri}")
        return model

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the classes it answers, in output order."""
        model = self.model
        return model.classes if isinstance(model, ComponentVersion) else model.spec.classes

    def routes(self, instrument: str) -> bool:
        """Return whether this canary answers for ``instrument`` (``venue.symbol``)."""
        return (
            instrument in self.canary_instruments
            or canary_bucket(self.name, instrument) < self.canary_bps
        )


LOADER_NICENESS: Final = 10
"""How much lower the loading thread's scheduling priority is than the event loop's."""


def background_priority() -> None:
    """Lower the calling thread's CPU priority, so that a load yields the core to inference.

    Linux schedules threads one by one, so this touches the loading thread
    only; where that is not possible the thread keeps the process's priority.
    """
    try:
        thread = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + LOADER_NICENESS
        )
    except (AttributeError, OSError):  # not Linux, or not allowed
        pass


LOADING_SWITCH_INTERVAL_S: Final = 0.0001
"""The interpreter's thread switch interval while a version loads (Python's default is 5 ms)."""


class LoadingWindow:
    """While a version loads, let the event loop's thread take the GIL back within 100 µs.

    Loading runs Python code (reading metadata, hashing, the warm-up's numpy)
    in the loading thread; with Python's default 5 ms switch interval an
    inference on the loop could wait that long for the interpreter. The
    interval is shortened while any load runs and restored after the last.
    """

    def __init__(self) -> None:
        self._active = 0
        self._saved = sys.getswitchinterval()

    def __enter__(self) -> None:
        if self._active == 0:
            self._saved = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved, LOADING_SWITCH_INTERVAL_S))
        self._active += 1

    def __exit__(self, *exc: object) -> None:
        self._active -= 1
        if self._active == 0:
            sys.setswitchinterval(self._saved)


def canary_bucket(name: str, instrument: str) -> int:
    """Return the instrument's bucket in ``[0, 10000)`` for model ``name``: fixed per pair."""
    digest = hashlib.sha256(f"{name}\x00{instrument}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % MAX_BPS


@dataclass(frozen=True)
class Route:
    """Which version answers whom, for one model; replaced whole, never changed in place."""

    name: str
    production: VersionState | None = None
    shadow: VersionState | None = None
    canary: VersionState | None = None

    def acting(self, instrument: str) -> VersionState | None:
        """Return the version whose answer is acted on for ``instrument`` (``venue.symbol``)."""
        canary = self.canary
        if canary is not None and canary.routes(instrument):
            return canary
        return self.production

    def candidates(self, instrument: str) -> list[VersionState]:
        """Return the versions compared with production on ``instrument``: shadow, routed canary."""
        production = self.production
        found = []
        if self.shadow is not None and self.shadow is not production:
            found.append(self.shadow)
        canary = self.canary
        if canary is not None and canary is not production and canary.routes(instrument):
            found.append(canary)
        return found


@dataclass
class _Model:
    versions: dict[str, VersionState] = field(default_factory=dict)
    previous: list[str] = field(default_factory=list)  # production versions a rollback returns to
    in_process: str | None = None  # the last in-process production version: the stand-in


class ModelRegistry:
    """Model versions by name: load, validate, promote, shadow, canary and roll back.

    ``repository`` is the model repository's root (``<root>/<name>/<version>/``);
    ``journal`` receives every change before it acts (None: nothing is kept
    across restarts). ``threads`` is each session's intra-op thread count.
    ``components`` are the out-of-process components a version may name
    (None: none); ``classes`` gives a model's classes for its component
    versions (default: those of its last loaded in-process version);
    ``fallbacks`` says per model what answers while a production component is
    down: ``"in_process"`` (default) or ``"none"``.
    """

    RECORD_KINDS: Final = frozenset(
        {"model_load", "model_promote", "model_shadow", "model_canary", "model_rollback"}
    )

    def __init__(
        self,
        repository: Path | str,
        journal: _Journal | None = None,
        *,
        threads: int = 1,
        clock: Callable[[], int] = time.time_ns,
        executor: concurrent.futures.Executor | None = None,
        components: Components | None = None,
        classes: Mapping[str, Sequence[str]] | None = None,
        fallbacks: Mapping[str, str] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads: at least 1, got {threads}")
        for model_name, fallback in (fallbacks or {}).items():
            if fallback not in FALLBACKS:
                raise ValueError(f"{model_name}: fallback is one of {FALLBACKS}, got {fallback!r}")
        self.components = components
        self.classes = {name: tuple(found) for name, found in (classes or {}).items()}
        self.fallbacks = dict(fallbacks or {})
        self.repository = Path(repository)
        self.journal = journal
        self.threads = threads
        self.clock = clock
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="model-load", initializer=background_priority
        )
        self._models: dict[str, _Model] = {}
        self._routes: dict[str, Route] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[VersionState]] = {}
        self._window = LoadingWindow()
        self.restore_failures: list[str] = []
        """Why journaled changes could not be applied again at the last restore."""
        self._listeners: list[Callable[[VersionState], None]] = []

    # -- reading -------------------------------------------------------------

    def route(self, name: str) -> Route:
        """Return the model's current route (an empty one for an unknown name)."""
        return self._routes.get(name) or Route(name)

    def names(self) -> list[str]:
        """Return the names with at least one loaded version."""
        return sorted(self._models)

    def versions(self, name: str = "") -> list[VersionState]:
        """Return the loaded versions (only ``name``'s when given), by name, then load time."""
        states = [
            state
            for model_name, model in self._models.items()
            if not name or model_name == name
            for state in model.versions.values()
        ]
        return sorted(states, key=lambda s: (s.name, s.model.loaded_ns, s.version))

    def stand_in(self, name: str) -> VersionState | None:
        """Return the in-process version answering while the production component is down.

        It is the last in-process version that was production (None when the
        model's fallback is ``"none"`` or there never was one).
        """
        model = self._models.get(name)
        if model is None or model.in_process is None or self.fallbacks.get(name) == "none":
            return None
        return model.versions.get(model.in_process)

    def on_version(self, listener: Callable[[VersionState], None]) -> None:
        """Call ``listener`` with each version installed from now on (loaded or restored)."""
        self._listeners.append(listener)

    def _installed(self, state: VersionState) -> None:
        self._models.setdefault(state.name, _Model()).versions[state.version] = state
        for listener in self._listeners:
            listener(state)

    def get(self, name: str, version: str) -> VersionState:
        """Return a loaded version; NOT_FOUND names the versions there are."""
        model = self._models.get(name)
        if model is None:
            raise RegistryError("not_found", f"model {name!r} has no loaded version")
        state = model.versions.get(version)
        if state is None:
            known = ", ".join(model.versions) or "none"
            raise RegistryError(
                "not_found", f"model {name!r} has no loaded version {version!r} (loaded: {known})"
            )
        return state

    # -- loading -------------------------------------------------------------

    def files(self, name: str, version: str, uri: str) -> VersionFiles:
        """Return a version's files: in ``uri`` (a folder or model file), else the repository."""
        for field_name, value in (("name", name), ("version", version)):
            if not value or not _NAME.match(value) or value in {".", ".."}:
                raise RegistryError(
                    "invalid", f"{field_name}: use letters, digits, '_', '-' and '.', got {value!r}"
                )
        if uri:
            path = Path(uri.removeprefix("file://"))
            if path.is_dir():
                return VersionFiles(path / MODEL_FILE, path / METADATA_FILE)
            if path.is_file():
                return VersionFiles(path, path.parent / METADATA_FILE)
            raise RegistryError("not_found", f"uri: {uri} does not exist on the kernel's machine")
        folder = self.repository / name / version
        if not folder.is_dir():
            raise RegistryError(
                "not_found", f"model {name!r} has no version {version!r} in {self.repository}"
            )
        return VersionFiles(folder / MODEL_FILE, folder / METADATA_FILE)

    async def load(self, name: str, version: str, uri: str = "", sha256: str = "") -> VersionState:
        """Open and validate a version in a worker thread; it starts LOADED.

        Loading a known version again with the same file is answered with it
        unchanged; with a different file it fails (``exists``).
        """
        return await self._load(name, version, uri, sha256, journal=True)

    async def _load(
        self, name: str, version: str, uri: str, sha256: str, *, journal: bool
    ) -> VersionState:
        if sha256 and (len(sha256) != 64 or not all(c in "0123456789abcdefABCDEF" for c in sha256)):
            raise RegistryError("invalid", f"sha256: expected 64 hex digits, got {sha256!r}")
        existing = self._models.get(name, _Model()).versions.get(version)
        if existing is not None:
            if uri.startswith(COMPONENT_URI) or existing.component is not None:
                if uri != existing.model.uri:
                    raise RegistryError(
                        "exists",
                        f"model {name!r} version {version!r} is loaded from "
                        f"{existing.model.uri}, not {uri or 'the repository'}",
                    )
                return existing
            if sha256 and sha256.lower() != existing.model.sha256:
                raise RegistryError(
                    "exists",
                    f"model {name!r} version {version!r} is loaded with SHA-256 "
                    f"{existing.model.sha256}, not {sha256.lower()}",
                )
            return existing
        if uri.startswith(COMPONENT_URI):
            return self._load_component(name, version, uri, sha256, journal=journal)
        files = self.files(name, version, uri)
        key = (name, version)
        pending = self._loading.get(key)
        if pending is not None:  # the same version is being loaded: share its outcome
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[VersionState] = loop.create_future()
        self._loading[key] = future
        try:
            try:
                with self._window:
                    model = await loop.run_in_executor(
                        self._executor,
                        lambda: open_version(name, version, files, sha256, threads=self.threads),
                    )
            except VersionRejected as error:
                reason = "invalid" if error.invalid else "precondition"
                raise RegistryError(reason, f"{name}:{version} refused: {error}") from None
            if journal:
                self._journal("model_load", [name, version, uri, model.sha256])
            state = VersionState(
                model, Stage.LOADED, VersionMetrics(model.spec.classes), self.clock()
            )
            self._installed(state)
            log.info(
                "model %s:%s loaded from %s (sha256 %s)", name, version, model.uri, model.sha256
            )
            future.set_result(state)
            return state
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so a load nobody shared never warns
            raise
        finally:
            del self._loading[key]

    def _load_component(
        self, name: str, version: str, uri: str, sha256: str, *, journal: bool
    ) -> VersionState:
        """Install a version answered by the component ``uri`` names; it starts LOADED."""
        component = uri[len(COMPONENT_URI) :]
        for field_name, value in (("name", name), ("version", version), ("uri", component)):
            if not value or not _NAME.match(value) or value in {".", ".."}:
                raise RegistryError(
                    "invalid", f"{field_name}: use letters, digits, '_', '-' and '.', got {value!r}"
                )
        if sha256:
            raise RegistryError(
                "invalid", f"sha256: {uri} is answered out of process, it has no file to hash"
            )
        components = self.components
        if components is None or component not in components.names:
            known = ", ".join(sorted(components.names)) if components else ""
            raise RegistryError(
                "not_found",
                f"uri: no component {component!r} in [[components]] "
                f"(configured: {known or 'none'})",
            )
        for state in self.versions():
            served = state.component
            if served is not None and served.component == component:
                raise RegistryError(
                    "exists",
                    f"component {component!r} already answers for {state.name}:{state.version}",
                )
        link = components.link(component)
        kind = getattr(link, "kind", "") if link is not None else ""
        if kind and kind != "model":
            raise RegistryError("invalid", f"component {component!r} is a {kind}, not a model")
        classes = self.classes.get(name) or next(
            (state.classes for state in reversed(self.versions(name)) if state.component is None),
            (),
        )
        if not classes:
            raise RegistryError(
                "precondition",
                f"model {name!r} has no in-process version to take its classes from; "
                "set classes in its [[serving.models]] table",
            )
        if journal:
            self._journal("model_load", [name, version, uri, ""])
        model = ComponentVersion(name, version, component, classes, components)
        state = VersionState(model, Stage.LOADED, VersionMetrics(classes), self.clock())
        self._installed(state)
        log.info("model %s:%s answered by component %s", name, version, component)
        return state

    def _require_up(self, state: VersionState, stage: str) -> None:
        component = state.component
        if component is not None and not component.up():
            raise RegistryError(
                "precondition",
                f"model {state.name!r} version {state.version!r}: component "
                f"{component.component!r} is {component.down_reason()}; it can become {stage} "
                "once it is up",
            )

    # -- stages --------------------------------------------------------------

    def promote(self, name: str, version: str) -> VersionState:
        """Make ``version`` production; the one before is retired and remembered for rollback."""
        state = self.get(name, version)
        if state.stage is Stage.PRODUCTION:
            return state
        self._require_up(state, "production")
        self._journal("model_promote", [name, version])
        self._promote(name, version)
        return state

    def _promote(self, name: str, version: str) -> None:
        model = self._models[name]
        route = self.route(name)
        state = model.versions[version]
        if route.production is not None:
            self._set_stage(route.production, Stage.RETIRED)
            model.previous.append(route.production.version)
        self._set_stage(state, Stage.PRODUCTION)
        if state.component is None:
            model.in_process = version
        self._routes[name] = Route(
            name,
            production=state,
            shadow=None if route.shadow is state else route.shadow,
            canary=None if route.canary is state else route.canary,
        )
        log.warning("model %s: version %s is production", name, version)

    def shadow(self, name: str, version: str) -> VersionState:
        """Run ``version`` beside production, recorded and never acted on."""
        state = self.get(name, version)
        if state.stage is Stage.SHADOW:
            return state
        if state.stage is Stage.PRODUCTION:
            raise RegistryError(
                "precondition", f"model {name!r} version {version!r} is production already"
            )
        self._journal("model_shadow", [name, version])
        self._shadow(name, version)
        return state

    def _shadow(self, name: str, version: str) -> None:
        route = self.route(name)
        state = self._models[name].versions[version]
        if route.shadow is not None:
            self._set_stage(route.shadow, Stage.LOADED)
        self._set_stage(state, Stage.SHADOW)
        canary = None if route.canary is state else route.canary
        self._routes[name] = Route(name, route.production, state, canary)
        log.warning("model %s: version %s in shadow", name, version)

    def canary(
        self, name: str, version: str, canary_bps: int = 0, instruments: Sequence[str] = ()
    ) -> VersionState:
        """Answer for ``instruments`` (``venue.symbol``), and a ``canary_bps`` share of the rest."""
        state = self.get(name, version)
        if not 0 <= canary_bps <= MAX_BPS:
            raise RegistryError("invalid", f"canary_bps: 0 to {MAX_BPS}, got {canary_bps}")
        chosen = frozenset(instruments)
        malformed = sorted(item for item in chosen if item.count(".") < 1 or item.startswith("."))
        if malformed:
            raise RegistryError("invalid", f"instruments: expected venue.symbol, got {malformed}")
        if canary_bps == 0 and not chosen:
            raise RegistryError("invalid", "canary_bps or instruments: choose whom it answers")
        if state.stage is Stage.PRODUCTION:
            raise RegistryError(
                "precondition", f"model {name!r} version {version!r} is production already"
            )
        self._require_up(state, "canary")
        if (
            state.stage is Stage.CANARY
            and state.canary_bps == canary_bps
            and state.canary_instruments == chosen
        ):
            return state
        self._journal("model_canary", [name, version, canary_bps, sorted(chosen)])
        self._canary(name, version, canary_bps, chosen)
        return state

    def _canary(self, name: str, version: str, canary_bps: int, chosen: frozenset[str]) -> None:
        route = self.route(name)
        state = self._models[name].versions[version]
        if route.canary is not None and route.canary is not state:
            self._set_stage(route.canary, Stage.LOADED)
            route.canary.canary_bps, route.canary.canary_instruments = 0, frozenset()
        state.canary_bps, state.canary_instruments = canary_bps, chosen
        self._set_stage(state, Stage.CANARY)
        shadow = None if route.shadow is state else route.shadow
        self._routes[name] = Route(name, route.production, shadow, state)
        log.warning(
            "model %s: version %s in canary for %s and %d bps of the rest",
            name,
            version,
            ", ".join(sorted(chosen)) or "no chosen instrument",
            canary_bps,
        )

    def rollback(self, name: str, from_version: str) -> VersionState:
        """Leave production ``from_version`` for the production version before it."""
        state = self.get(name, from_version)
        if state.stage is not Stage.PRODUCTION:
            raise RegistryError(
                "precondition",
                f"model {name!r} version {from_version!r} is {state.stage.value}, not production",
            )
        if not self._models[name].previous:
            raise RegistryError(
                "precondition", f"model {name!r} has no earlier production version to return to"
            )
        self._journal("model_rollback", [name, from_version])
        return self._rollback(name)

    def _rollback(self, name: str) -> VersionState:
        model = self._models[name]
        route = self.route(name)
        back = model.versions[model.previous.pop()]
        if route.production is not None:
            self._set_stage(route.production, Stage.RETIRED)
        self._set_stage(back, Stage.PRODUCTION)
        if back.component is None:
            model.in_process = back.version
        self._routes[name] = Route(
            name,
            production=back,
            shadow=None if route.shadow is back else route.shadow,
            canary=None if route.canary is back else route.canary,
        )
        log.warning("model %s rolled back to version %s", name, back.version)
        return back

    def _set_stage(self, state: VersionState, stage: Stage) -> None:
        state.stage = stage
        state.ts_stage = self.clock()
        if stage is not Stage.CANARY:
            state.canary_bps, state.canary_instruments = 0, frozenset()

    # -- journal -------------------------------------------------------------

    def _journal(self, kind: str, payload: list[Any]) -> None:
        if self.journal is None:
            return
        self.journal.append(kind, payload, self.clock())
        self.journal.sync()

    async def restore(self, records: Iterable[tuple[str, Any]]) -> int:
        """Apply the journal's model changes again, in order; return how many were applied.

        A version that can no longer be loaded (its file gone or changed) is
        logged and left out, with the changes that name it, and the reason is
        kept in :attr:`restore_failures`; the rest is restored.
        """
        applied = 0
        for kind, payload in records:
            if kind not in self.RECORD_KINDS:
                continue
            try:
                if kind == "model_load":
                    name, version, uri, sha256 = payload
                    await self._load(name, version, uri, sha256, journal=False)
                elif kind == "model_promote":
                    self.get(*payload)
                    self._promote(*payload)
                elif kind == "model_shadow":
                    self.get(*payload)
                    self._shadow(*payload)
                elif kind == "model_canary":
                    name, version, bps, instruments = payload
                    self.get(name, version)
                    self._canary(name, version, int(bps), frozenset(instruments))
                else:
                    name, from_version = payload
                    if self.get(name, from_version).stage is not Stage.PRODUCTION:
                        raise RegistryError("precondition", f"{from_version} is not production")
                    self._rollback(name)
            except (RegistryError, KeyError, IndexError, TypeError, ValueError) as error:
                reason = f"{kind} {payload!r}: {error}"
                self.restore_failures.append(reason)
                log.error("model change not restored: %s", reason)
                continue
            applied += 1
        if applied:
            log.info(
                "restored %d model changes: %s",
                applied,
                ", ".join(
                    f"{name} production {route.production.version if route.production else '-'}"
                    for name, route in sorted(self._routes.items())
                )
                or "no production version",
            )
        return applied

    def close(self) -> None:
        """Stop the loading thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- metrics ---------------------------------------------------------------

    def register_metrics(self, collector: KernelCollector) -> None:
        """Export every version's latency, answers by class, agreement and errors."""
        collector.add_source(self._families)

    def _families(self) -> list[Any]:
        latency = HistogramMetricFamily(
            "tradekernel_model_inference_seconds",
            "Time of one batched inference, per version",
            labels=["model", "version", "stage"],
        )
        predictions = CounterMetricFamily(
            "tradekernel_model_predictions",
            "Answers per version and predicted class",
            labels=["model", "version", "stage", "class"],
        )
        compared = CounterMetricFamily(
            "tradekernel_model_compared",
            "Shadow and routed canary answers compared with production's on the same input",
            labels=["model", "version"],
        )
        agreed = CounterMetricFamily(
            "tradekernel_model_agreed",
            "Compared answers whose class equals production's",
            labels=["model", "version"],
        )
        errors = CounterMetricFamily(
            "tradekernel_model_errors", "Inferences that failed", labels=["model", "version"]
        )
        published = CounterMetricFamily(
            "tradekernel_model_published",
            "Answers acted on: published as the model's prediction",
            labels=["model", "version"],
        )
        for state in self.versions():
            metrics = state.metrics
            labels = [state.name, state.version, state.stage.value]
            latency.add_metric(
                labels, metrics.latency.cumulative_buckets(), metrics.latency.total_ns / 1e9
            )
            for class_name, count in zip(state.classes, metrics.by_class, strict=True):
                predictions.add_metric([*labels, class_name], count)
            compared.add_metric([state.name, state.version], metrics.compared)
            agreed.add_metric([state.name, state.version], metrics.agreed)
            errors.add_metric([state.name, state.version], metrics.errors)
            published.add_metric([state.name, state.version], metrics.published)
        return [latency, predictions, compared, agreed, errors, published]
