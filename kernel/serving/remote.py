"""Model versions served out of process, as gRPC components (``tradekernel_sdk.remote``).

:class:`ModelComponent` is the component side: it loads one stored version
with onnxruntime, validated exactly as the registry validates (see
:mod:`kernel.serving.session`), keeps each subscribed instrument's book
window and answers each book event with one ``PredictionOut`` per class,
``target = "probability.<class>"``, ``ts_event`` the event's receive time.
Serve it with ``tradekernel_sdk.remote.serve(ModelComponent(folder, ...))``.

:class:`ComponentModels` is the kernel side. The kernel's component link
publishes what a component sends on ``component.prediction.<component>``;
this collects each event's class probabilities per component and, for the
component acting as the model's version, publishes a
:class:`~tradekernel_sdk.predictions.Prediction` on
``model.prediction.<venue>.<symbol>``, as the in-process engine does. A
component in shadow is compared with the acting one event by event
(agreement), and never published. Switching is one call, so a version is
replaced by starting the new component, shadowing it, then promoting it,
while the kernel keeps running.

When the acting component goes down (its process killed, its link lost),
:meth:`ComponentModels.in_process_answers` turns true: an in-process
:class:`~kernel.serving.engine.ServingEngine` built with
``answering=models.in_process_answers`` takes over from the next event with
the registry's production version, and hands back when the component is up
again. Each switch is logged with the reason. Events the component had
received but not answered when it died are not answered.
"""

from __future__ import annotations

import decimal
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kernel.bus import Bus
from kernel.components.link import ComponentState
from kernel.serving.engine import BookWindow
from kernel.serving.session import OnnxVersion, VersionFiles, open_version
from tradekernel_sdk.predictions import Prediction, prediction_topic
from tradekernel_sdk.remote import PredictionOut
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus

__all__ = ["PROBABILITY_TARGET", "ComponentModels", "ComponentVersionStats", "ModelComponent"]

log = logging.getLogger(__name__)

PROBABILITY_TARGET: Final = "probability."
"""Targets are ``probability.<class>``, one output per class."""
_DIGITS: Final = decimal.Decimal("0.000000001")


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
class ComponentVersionStats:
    """What one component version answered, and how often it agreed with the acting one."""

    component: str
    answers: int = 0
    published: int = 0
    compared: int = 0
    agreed: int = 0
    malformed: int = 0


@dataclass
class _Answer:
    probabilities: dict[str, float] = field(default_factory=dict)
    event: int = 0


class ComponentModels:
    """The components answering for model ``model``: which acts, which shadows."""

    def __init__(self, bus: Bus, model: str, classes: Sequence[str]) -> None:
        self.bus = bus
        self.model = model
        self.classes = tuple(classes)
        self.versions: dict[str, ComponentVersionStats] = {}
        self.acting: str | None = None
        self.shadowing: str | None = None
        self._handlers: dict[str, Any] = {}
        # Answers being assembled, and complete acting / shadow answers not yet compared.
        self._partial: dict[tuple[str, str, str, int], _Answer] = {}
        self._complete: dict[str, dict[tuple[str, str, int], int]] = {}
        self._events: dict[tuple[str, str, str], int] = {}
        self._links: dict[str, Any] = {}
        self._falling_back = False
        self.fallbacks = 0
        """How many times the in-process version took over from a component."""

    def in_process_answers(self) -> bool:
        """Return whether the in-process version answers now: no acting component is up."""
        acting = self.acting
        link = self._links.get(acting) if acting is not None else None
        down = acting is None or (link is not None and link.state is not ComponentState.UP)
        if down != self._falling_back:
            self._falling_back = down
            if down:
                self.fallbacks += 1
                reason = link.down_reason if link is not None else "no component acts"
                log.error(
                    "model %s: component version %s is down (%s); the in-process version answers",
                    self.model,
                    acting,
                    reason or "not up",
                )
            else:
                log.warning("model %s: component version %s answers again", self.model, acting)
        return down

    def add(self, version: str, component: str, link: Any = None) -> None:
        """Listen to ``component`` as ``version``; it starts neither acting nor in shadow.

        ``link`` is the kernel's :class:`~kernel.components.ComponentLink` to it,
        whose state says whether it is up (without one it is taken as up).
        """
        if version in self.versions:
            raise ValueError(f"version {version!r} is already served by a component")
        self.versions[version] = ComponentVersionStats(component)
        self._links[version] = link
        self._complete[version] = {}

        def on_output(message: Any) -> None:
            self._on_output(version, message)

        self._handlers[version] = on_output
        self.bus.subscribe(f"component.prediction.{component}", on_output)

    def remove(self, version: str) -> None:
        """Stop listening to a version's component (it must not be acting)."""
        if version == self.acting:
            raise ValueError(f"version {version!r} is acting; promote another first")
        stats = self.versions.pop(version)
        self.bus.unsubscribe(f"component.prediction.{stats.component}", self._handlers.pop(version))
        if self.shadowing == version:
            self.shadowing = None

    def promote(self, version: str) -> None:
        """Make ``version``'s answers the ones published, from the next event on."""
        if version not in self.versions:
            raise KeyError(f"no component serves version {version!r}")
        self.acting = version
        if self.shadowing == version:
            self.shadowing = None
        self._forget_unpaired()
        log.warning("model %s: component version %s acts", self.model, version)

    def shadow(self, version: str) -> None:
        """Compare ``version``'s answers with the acting one's, never publishing them."""
        if version not in self.versions:
            raise KeyError(f"no component serves version {version!r}")
        if version == self.acting:
            raise ValueError(f"version {version!r} is acting")
        self.shadowing = version
        self._forget_unpaired()

    def _forget_unpaired(self) -> None:
        for waiting in self._complete.values():
            waiting.clear()

    def _on_output(self, version: str, message: Any) -> None:
        stats = self.versions[version]
        target = message.target
        if not target.startswith(PROBABILITY_TARGET):
            stats.malformed += 1
            return
        class_name = target[len(PROBABILITY_TARGET) :]
        value = message.value.units / 10**message.value.precision
        key = (version, message.venue, message.symbol, message.ts_event)
        answer = self._partial.setdefault(key, _Answer())
        answer.probabilities[class_name] = value
        if len(answer.probabilities) < len(self.classes):
            return
        del self._partial[key]
        if set(answer.probabilities) != set(self.classes):
            stats.malformed += 1
            return
        stats.answers += 1
        probabilities = tuple(answer.probabilities[name] for name in self.classes)
        predicted = max(range(len(probabilities)), key=probabilities.__getitem__)
        self._settle(version, message.venue, message.symbol, message.ts_event, predicted)
        if version == self.acting:
            counter = (version, message.venue, message.symbol)
            self._events[counter] = self._events.get(counter, 0) + 1
            stats.published += 1
            self.bus.publish(
                prediction_topic(message.venue, message.symbol),
                Prediction(
                    model=self.model,
                    version=version,
                    venue=message.venue,
                    symbol=message.symbol,
                    ts_recv=message.ts_event,
                    event=self._events[counter],
                    classes=self.classes,
                    probabilities=probabilities,
                    predicted=predicted,
                ),
            )

    def _settle(self, version: str, venue: str, symbol: str, ts_event: int, predicted: int) -> None:
        """Pair an acting answer with the shadow's for the same event, whichever came first."""
        acting, shadow = self.acting, self.shadowing
        if shadow is None or acting is None or version not in (acting, shadow):
            return
        other = shadow if version == acting else acting
        key = (venue, symbol, ts_event)
        waiting = self._complete[other].pop(key, None)
        if waiting is None:
            self._complete[version][key] = predicted
            return
        shadow_stats = self.versions[shadow]
        shadow_stats.compared += 1
        shadow_stats.agreed += int(waiting == predicted)
