"""Model versions served out of process, as gRPC components (``tradekernel_sdk.remote``).

:class:`ModelComponent` is the component side: it loads one stored version
with onnxruntime, validated exactly as the registry validates (see
:mod:`kernel.serving.session`), keeps each subscribed instrument's book
window and answers each book event with one ``PredictionOut`` per class,
``target = "probability.<class>"``, ``ts_event`` the event's receive time.
Serve it with ``tradekernel_sdk.remote.serve(ModelComponent(folder, ...))``.

:class:`ComponentModels` is the kernel side, one per served model. The
registry owns every version's stage, in process or not (a component version
is loaded with ``uri = "component:NAME"``); this reads the model's route and
answers. The kernel's component link publishes what a component sends on
``component.prediction.<component>``; this assembles each event's class
probabilities and, when the component's version is the one answering for
the instrument (production, or the canary routed to it), publishes a
:class:`~tradekernel_sdk.predictions.Prediction` on
``model.prediction.<venue>.<symbol>``, as the in-process engine does. A
shadow's answers, and a canary's on its routed instruments, are paired with
production's for the same event (agreement), whichever side answers in or
out of process; a component version's latency is the time from the book
event to its answer. So a version is replaced by starting the new component,
loading it, shadowing it, then promoting it, while the kernel keeps running.

When the component of the answering version goes down (its process killed,
its link lost), :meth:`ComponentModels.answering` names who answers in its
place from the next event: production for a canary's instruments, and for
production the registry's :meth:`~kernel.serving.registry.ModelRegistry.stand_in`
(the last in-process production version, which the engine scores), or
nobody when the model's fallback is ``none``. Who answers an event is
decided once, when the engine sees it (:meth:`ComponentModels.event`); a
component back up takes over after its first answer, so a restarted one
fills its windows while the stand-in still answers. Each switch is logged
with the reason and counted. Events the component had received but not
answered when it died are not answered.
"""

from __future__ import annotations

import decimal
import logging
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kernel.bus import Bus
from kernel.serving.engine import BookWindow
from kernel.serving.registry import ModelRegistry, Route, Stage, VersionState
from kernel.serving.session import OnnxVersion, VersionFiles, open_version
from tradekernel_sdk.predictions import Prediction, prediction_topic
from tradekernel_sdk.remote import PredictionOut
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus

__all__ = ["PROBABILITY_TARGET", "ComponentModels", "ModelComponent"]

log = logging.getLogger(__name__)

PROBABILITY_TARGET: Final = "probability."
"""Targets are ``probability.<class>``, one output per class."""
_DIGITS: Final = decimal.Decimal("0.000000001")
MAX_UNPAIRED: Final = 10_000
"""Answers kept per version while their partner's has not come (the oldest go first)."""
MAX_EVENTS: Final = 65_536
"""Book events remembered for their number and time, to stamp and time component answers."""


class ModelComponent:
    """A stored version served as a ``model`` component for ``instruments`` (venue, symbol)."""

    kind = "model"

    def __init__(
        self,
        folder: Path | str,
        instruments: Sequence[tuple[str, str]],
        *,
        name: str | None = None,
        threads: int = 1,
    ) -> None:
        folder = Path(folder)
        self.version: OnnxVersion = open_version(
            name or folder.parent.name,
            folder.name,
            VersionFiles(folder / "model.onnx", folder / "metadata.json"),
            "",
            threads=threads,
        )
        spec = self.version.spec.input
        if spec.source != "book":
            raise ValueError(f"{folder}: a component serves book models, this one reads features")
        self.instruments = list(instruments)
        self.windows = {key: BookWindow(spec.levels, spec.window) for key in self.instruments}
        self.context: Any = None

    def on_start(self) -> None:
        """Ask the kernel for the instruments' books."""
        for venue, symbol in self.instruments:
            self.context.subscribe(venue, symbol)

    def on_book_status(self, status: BookStatus) -> None:
        """Forget a window the book broke."""
        window = self.windows.get((status.venue, status.symbol))
        if window is not None and status.state is not BookState.VALID:
            window.clear()

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> list[PredictionOut]:
        """Answer one event with a probability per class, once the window is full."""
        window = self.windows.get((update.venue, update.symbol))
        if window is None:
            return []
        window.push(book)
        spec = self.version.spec
        if window.count < spec.input.window:
            return []
        inputs = spec.input.normalise_book(window.latest(spec.input.window, spec.input.levels))
        (probabilities,) = self.version.predict(inputs[None, ...])
        return [
            PredictionOut(
                model=self.version.name,
                target=f"{PROBABILITY_TARGET}{class_name}",
                value=decimal.Decimal(float(probability)).quantize(_DIGITS),
                venue=update.venue,
                symbol=update.symbol,
                model_version=self.version.version,
                ts_event=update.ts_recv,
            )
            for class_name, probability in zip(spec.classes, probabilities, strict=True)
        ]


@dataclass
class _Answer:
    probabilities: dict[str, float] = field(default_factory=dict)


_Key = tuple[str, str, int]  # venue, symbol, ts_recv of the book event


@dataclass
class ComponentStats:
    """What the components of one model sent, and what became of it."""

    answers: int = 0
    """Complete answers (one probability per class)."""
    published: int = 0
    """Answers published as the model's prediction."""
    malformed: int = 0
    """Outputs that were not a probability of a known class, or named another version."""
    unrouted: int = 0
    """Answers from a component whose version has no stage, or for an instrument not served."""
    fallbacks: int = 0
    """Times a component's version went down while answering, and another took over."""


class ComponentModels:
    """The kernel's side of the component versions of model ``model``: it answers, the
    registry decides.

    ``instruments`` limits it to those ``(venue, symbol)`` pairs (as the
    model's engine). The engine calls :meth:`event` for each book event,
    :meth:`answering` to know who answers, and :meth:`answered` with its own
    answers that a component's must be compared with.
    """

    def __init__(
        self,
        bus: Bus,
        registry: ModelRegistry,
        model: str,
        *,
        instruments: Collection[tuple[str, str]] | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.model = model
        self.only = None if instruments is None else frozenset(instruments)
        self.stats = ComponentStats()
        self.down: dict[str, str] = {}
        """Component versions found down while they should answer, and what answers instead."""
        self._handlers: dict[str, Any] = {}
        self._partial: dict[tuple[str, str, str, int], _Answer] = {}
        self._unpaired: dict[tuple[str, str], OrderedDict[_Key, int]] = {}
        self._events: OrderedDict[_Key, tuple[int, int, VersionState | None]] = OrderedDict()
        self._route_seen: Route | None = None
        self._remote = False
        self._warned: set[str] = set()
        registry.on_version(self._on_version)
        for state in registry.versions(model):
            self._on_version(state)

    # -- the registry --------------------------------------------------------

    def _on_version(self, state: VersionState) -> None:
        component = state.component
        if state.name != self.model or component is None:
            return
        self._remote = True
        name = component.component
        if name in self._handlers:
            return

        def on_output(message: Any) -> None:
            self._on_output(state, message)

        self._handlers[name] = on_output
        self.bus.subscribe(f"component.prediction.{name}", on_output)

    def close(self) -> None:
        """Stop listening to the components."""
        for name, handler in self._handlers.items():
            self.bus.unsubscribe(f"component.prediction.{name}", handler)
        self._handlers.clear()

    # -- what the engine asks ------------------------------------------------

    def event(
        self, venue: str, symbol: str, ts_recv: int, number: int, answering: VersionState | None
    ) -> None:
        """Remember a book event: its number, arrival, and who answers it (decided once, here)."""
        if not self._remote:
            return
        events = self._events
        events[(venue, symbol, ts_recv)] = (number, time.perf_counter_ns(), answering)
        if len(events) > MAX_EVENTS:
            events.popitem(last=False)

    def answering(self, route: Route, instrument: str) -> VersionState | None:
        """Return the version whose answer acts for ``instrument`` now.

        A version answered by a component that is down gives way: a canary to
        production, production to the registry's stand-in (or nobody).
        """
        acting = route.acting(instrument)
        if acting is None or acting.component is None:
            return acting
        if acting is route.canary and not self._up(acting, "production"):
            acting = route.production
            if acting is None or acting.component is None:
                return acting
        if self._up(acting, "stand-in"):
            return acting
        return self.registry.stand_in(self.model)

    def _up(self, state: VersionState, instead: str) -> bool:
        """Return whether the version's component answers; note when it stops.

        A component back up answers again from the event after its first
        answer (a restarted one must fill its windows first); until then the
        version standing in keeps answering.
        """
        component = state.component
        assert component is not None
        up = component.up()
        version = state.version
        if version in self.down:
            return False
        if not up:
            if instead == "production":
                answers = "production answers for its instruments"
            else:
                stand_in = self.registry.stand_in(self.model)
                answers = (
                    f"the in-process version {stand_in.version} answers"
                    if stand_in is not None
                    else "nothing answers (no in-process version to fall back on)"
                )
            self.down[version] = answers
            self.stats.fallbacks += 1
            log.error(
                "model %s: component version %s (%s) is down (%s); %s",
                self.model,
                version,
                component.component,
                component.down_reason(),
                answers,
            )
        return up

    def _recovered(self, state: VersionState) -> None:
        component = state.component
        if state.version in self.down and component is not None and component.up():
            del self.down[state.version]
            log.warning(
                "model %s: component version %s (%s) is up and answers again",
                self.model,
                state.version,
                component.component,
            )

    def answered(
        self, state: VersionState, venue: str, symbol: str, ts_recv: int, predicted: int
    ) -> None:
        """Take an in-process answer to compare with a component's on the same event."""
        self._pair(self.registry.route(self.model), state, (venue, symbol, ts_recv), predicted)

    # -- components' answers -------------------------------------------------

    def _on_output(self, state: VersionState, message: Any) -> None:
        stats = self.stats
        target = message.target
        classes = state.classes
        if not target.startswith(PROBABILITY_TARGET) or (
            message.model_version and message.model_version != state.version
        ):
            self._malformed(state, f"sent {target!r} as version {message.model_version!r}")
            return
        key = (message.venue, message.symbol)
        if self.only is not None and key not in self.only:
            stats.unrouted += 1
            return
        value = message.value.units / 10**message.value.precision
        partial_key = (state.version, message.venue, message.symbol, message.ts_event)
        answer = self._partial.setdefault(partial_key, _Answer())
        answer.probabilities[target[len(PROBABILITY_TARGET) :]] = value
        if len(answer.probabilities) < len(classes):
            return
        del self._partial[partial_key]
        if set(answer.probabilities) != set(classes):
            self._malformed(state, f"answered classes {sorted(answer.probabilities)}")
            return
        stats.answers += 1
        probabilities = tuple(answer.probabilities[name] for name in classes)
        predicted = max(range(len(probabilities)), key=probabilities.__getitem__)
        metrics = state.metrics
        metrics.by_class[predicted] += 1
        event_key = (message.venue, message.symbol, message.ts_event)
        route = self.registry.route(self.model)
        instrument = f"{message.venue}.{message.symbol}"
        seen = self._events.get(event_key)
        if seen is None:  # an event the engine did not see (or forgot): decide now
            number, answering = 0, self.answering(route, instrument)
        else:
            number, arrived, answering = seen
            metrics.latency.observe(time.perf_counter_ns() - arrived)
        self._recovered(state)
        if state.stage in (Stage.LOADED, Stage.RETIRED):
            stats.unrouted += 1
            return
        if answering is state:
            stats.published += 1
            metrics.published += 1
            self.bus.publish(
                prediction_topic(message.venue, message.symbol),
                Prediction(
                    model=self.model,
                    version=state.version,
                    venue=message.venue,
                    symbol=message.symbol,
                    ts_recv=message.ts_event,
                    event=number,
                    classes=classes,
                    probabilities=probabilities,
                    predicted=predicted,
                ),
            )
        self._pair(route, state, event_key, predicted)

    def _malformed(self, state: VersionState, what: str) -> None:
        self.stats.malformed += 1
        state.metrics.errors += 1
        if state.version not in self._warned:
            self._warned.add(state.version)
            log.error("model %s:%s component %s", self.model, state.version, what)

    def _pair(self, route: Route, state: VersionState, key: _Key, predicted: int) -> None:
        """Compare a shadow's or routed canary's answer with production's, whichever came first.

        Pairs where both versions are in process are compared by the engine.
        """
        if route is not self._route_seen:  # a stage changed: answers waiting belong to the old
            self._route_seen = route
            self._unpaired.clear()
        production = route.production
        if production is None:
            return
        instrument = f"{key[0]}.{key[1]}"
        if state is production:
            pairs = [(c, "production") for c in route.candidates(instrument)]
        elif state in route.candidates(instrument):
            pairs = [(state, "candidate")]
        else:
            return
        for candidate, side in pairs:
            if candidate.component is None and production.component is None:
                continue
            other = "candidate" if side == "production" else "production"
            waiting = self._unpaired.get((candidate.version, other))
            theirs = waiting.pop(key, None) if waiting is not None else None
            if theirs is None:
                mine = self._unpaired.setdefault((candidate.version, side), OrderedDict())
                mine[key] = predicted
                if len(mine) > MAX_UNPAIRED:
                    mine.popitem(last=False)
                continue
            metrics = candidate.metrics
            metrics.compared += 1
            metrics.agreed += int(theirs == predicted)

    def report(self) -> dict[str, Any]:
        """Return the counts and the component versions down while they should answer."""
        return {**vars(self.stats), "down": dict(self.down)}
