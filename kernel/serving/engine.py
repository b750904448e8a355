"""The serving engine: model inputs built from bus events, scored in batches, answers on the bus.

For each event of an instrument it serves, the engine updates that
instrument's input (the window of its last book events, or, for a model over
streaming features, the feature vector the feature engine publishes on
``features.<venue>.<symbol>`` after the event), asks the model's
:class:`~kernel.serving.registry.Route` which version acts for the
instrument, and queues the input for it, and for the shadow version when
there is one; on an instrument routed to a canary, production's input is
queued too, so the canary is compared with production. Queued inputs are scored once per loop
iteration (or as soon as ``max_batch`` are waiting): every input due in the
same tick goes to onnxruntime in one batch per version, which costs less
than one call each. Without a running loop (a synchronous replay) or with
``batching=False`` each input is scored at once.

The acting version's answers are published as
:class:`~tradekernel_sdk.predictions.Prediction` on
``model.prediction.<venue>.<symbol>``, in event order; the shadow's and
the routed canary's are compared with production's on the same input
(agreement) and counted; a shadow's are never published. Versions answered
out of process are the business of ``remote``
(:class:`~kernel.serving.remote.ComponentModels`): it says who answers
(the engine stands by while a component does, and scores the stand-in while
it is down), and the engine hands it the in-process answers a component's
must be compared with. Plug-in hooks are never called per event: the engine
reads the bus and the registry only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kernel.bus import DEFAULT_PRIORITY, Bus
from kernel.features.engine import FeatureVector
from kernel.serving.registry import ModelRegistry, Route, VersionState
from kernel.serving.spec import BOOK_COLUMNS_PER_LEVEL
from tradekernel_sdk.features import ReplayBook
from tradekernel_sdk.predictions import Prediction, prediction_topic
from tradekernel_sdk.strategy import BookView
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookState, BookStatus

__all__ = ["BookWindow", "ServingEngine", "ServingStats"]

log = logging.getLogger(__name__)

SERVING_PRIORITY = DEFAULT_PRIORITY - 2
"""After the books are applied and before features' consumers: inputs see the event's book."""

BookLookup = Callable[[str, str], BookView | None]


class RemoteAnswers(Protocol):
    """The out-of-process side of a model (:class:`kernel.serving.remote.ComponentModels`)."""

    def event(
        self, venue: str, symbol: str, ts_recv: int, number: int, answering: VersionState | None
    ) -> None: ...

    def answering(self, route: Route, instrument: str) -> VersionState | None: ...

    def answered(
        self, state: VersionState, venue: str, symbol: str, ts_recv: int, predicted: int
    ) -> None: ...


class BookWindow:
    """The last ``capacity`` book events of one instrument as exact integer rows.

    Rows are written twice into a buffer of ``2 * capacity`` so that the
    latest ``n`` are always one contiguous slice, read without copying.
    """

    __slots__ = ("_buffer", "_next", "capacity", "count", "levels")

    def __init__(self, levels: int, capacity: int) -> None:
        self.levels = levels
        self.capacity = capacity
        self.count = 0
        self._next = 0
        self._buffer = np.zeros((2 * capacity, levels * BOOK_COLUMNS_PER_LEVEL), dtype=np.int64)

    def push(self, book: BookView) -> None:
        """Append the book's top levels in the layout; a thin side repeats its last price."""
        row = self._buffer[self._next]
        asks = book.ask_levels(self.levels)
        bids = book.bid_levels(self.levels)
        last_ask = asks[-1][0] if asks else 0
        last_bid = bids[-1][0] if bids else 0
        for level in range(self.levels):
            column = level * BOOK_COLUMNS_PER_LEVEL
            if level < len(asks):
                row[column], row[column + 1] = asks[level]
            else:
                row[column], row[column + 1] = last_ask, 0
            if level < len(bids):
                row[column + 2], row[column + 3] = bids[level]
            else:
                row[column + 2], row[column + 3] = last_bid, 0
        self._buffer[self._next + self.capacity] = row
        self._next = (self._next + 1) % self.capacity
        self.count += 1

    def latest(self, rows: int, levels: int) -> npt.NDArray[np.int64]:
        """Return the last ``rows`` events (oldest first) of the first ``levels`` levels."""
        end = self._next + self.capacity
        return self._buffer[end - rows : end, : levels * BOOK_COLUMNS_PER_LEVEL]

    def grown(self, capacity: int) -> BookWindow:
        """Return a window of a larger capacity holding the same events."""
        bigger = BookWindow(self.levels, capacity)
        kept = min(self.count, self.capacity)
        if kept:
            bigger._buffer[:kept] = self.latest(kept, self.levels)
            bigger._buffer[capacity : capacity + kept] = bigger._buffer[:kept]
        bigger._next = kept % capacity
        bigger.count = kept  # the rows it holds: what it never kept must fill again
        return bigger

    def clear(self) -> None:
        """Forget every event (the book broke; no window may span the break)."""
        self.count = 0
        self._next = 0


@dataclass
class ServingStats:
    """What the engine did, counted per event and per answer."""

    events: int = 0
    """Book events of served instruments."""
    feature_updates: int = 0
    """Feature vectors of served instruments (what feature models are scored on)."""
    scored: int = 0
    """Events given to the acting version (the rest were warming up or had no version)."""
    warming: int = 0
    """Events before the instrument's window was full (or its features were all defined)."""
    unserved: int = 0
    """Events while the model had no acting version."""
    standing_by: int = 0
    """Events while an out-of-process version was answering."""
    predictions: int = 0
    """Answers published."""
    failed: int = 0
    """Inputs whose inference raised or answered nonsense."""
    shadow_scored: int = 0
    """Shadow inputs scored (compared, never published)."""
    reference_scored: int = 0
    """Production inputs scored only to compare a canary (or a component) with."""
    batches: int = 0
    largest_batch: int = 0


class _Instrument:
    __slots__ = ("book", "events", "key", "label", "topic", "window")

    def __init__(self, venue: str, symbol: str, levels: int, capacity: int, own_book: bool) -> None:
        self.key = (venue, symbol)
        self.label = f"{venue}.{symbol}"
        self.topic = prediction_topic(venue, symbol)
        self.book = ReplayBook() if own_book else None
        self.window = BookWindow(levels, capacity)
        self.events = 0


@dataclass
class _Pending:
    instrument: _Instrument
    state: VersionState
    inputs: npt.NDArray[np.float32]
    ts_recv: int
    event: int
    publish: bool = False
    against: _Pending | None = None  # production's input, when this one is compared with it
    remote: bool = False  # its answer goes to the remote side, to pair with a component's
    answer: npt.NDArray[np.float32] | None = None


class ServingEngine:
    """Serve model ``model`` of ``registry`` to the instruments whose events reach ``bus``.

    ``instruments`` limits it to those ``(venue, symbol)`` pairs; ``books``
    reads the feeds' live books (without it the engine rebuilds each book
    from the events it sees); ``levels`` is the deepest book a version may ask for.
    ``remote`` (when given) is the model's out-of-process side: while a
    component answers, the windows keep filling and the engine stands by, so
    it can take over at the next event when the component goes down.
    """

    def __init__(
        self,
        bus: Bus,
        registry: ModelRegistry,
        model: str,
        *,
        instruments: Collection[tuple[str, str]] | None = None,
        books: BookLookup | None = None,
        levels: int = 10,
        batching: bool = True,
        max_batch: int = 64,
        remote: RemoteAnswers | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch: at least 1, got {max_batch}")
        self.bus = bus
        self.registry = registry
        self.model = model
        self.only = None if instruments is None else frozenset(instruments)
        self.books = books
        self.levels = levels
        self.batching = batching
        self.max_batch = max_batch
        self.remote = remote
        self.stats = ServingStats()
        self._instruments: dict[tuple[str, str], _Instrument] = {}
        self._queue: list[_Pending] = []
        self._flush_scheduled = False
        self._handlers: list[tuple[str, Callable[[Any], None]]] = [
            ("data.snapshot.*.*", self._on_book),
            ("data.book.*.*", self._on_book),
            ("data.status.*.*", self._on_status),
            ("features.*.*", self._on_features),
        ]
        self._column_maps: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int] | None] = {}
        self._started = False

    def start(self) -> None:
        """Subscribe to the book events on the bus."""
        if not self._started:
            for pattern, handler in self._handlers:
                self.bus.subscribe(pattern, handler, priority=SERVING_PRIORITY)
            self._started = True

    def stop(self) -> None:
        """Score what is queued, then unsubscribe."""
        self.flush()
        if self._started:
            for pattern, handler in self._handlers:
                self.bus.unsubscribe(pattern, handler)
            self._started = False

    # -- events ----------------------------------------------------------------

    def _entry(self, venue: str, symbol: str) -> _Instrument | None:
        key = (venue, symbol)
        entry = self._instruments.get(key)
        if entry is None:
            if self.only is not None and key not in self.only:
                return None
            entry = _Instrument(venue, symbol, self.levels, 1, self.books is None)
            self._instruments[key] = entry
        return entry

    def _on_status(self, status: BookStatus) -> None:
        entry = self._instruments.get((status.venue, status.symbol))
        if entry is not None and status.state is not BookState.VALID:
            entry.window.clear()
            if entry.book is not None:
                entry.book.clear()

    def _on_book(self, update: BookDelta | BookSnapshot) -> None:
        entry = self._entry(update.venue, update.symbol)
        if entry is None:
            return
        book: BookView | None
        if entry.book is not None:
            entry.book.apply(update)
            book = entry.book
        else:
            book = self.books(update.venue, update.symbol) if self.books else None
            if book is None:
                return
        stats = self.stats
        stats.events += 1
        entry.events += 1
        remote = self.remote
        route = self.registry.route(self.model)
        answering = self._answering(route, entry.label)
        if remote is not None:
            remote.event(update.venue, update.symbol, update.ts_recv, entry.events, answering)
        # Every in-process version that may answer keeps its window full, the stand-in
        # of a component too, so it takes over at the next event.
        stand_in = self.registry.stand_in(self.model) if remote is not None else None
        needed = max(
            (
                state.onnx.spec.input.window
                for state in (answering, route.production, route.shadow, route.canary, stand_in)
                if state is not None and state.component is None
            ),
            default=1,
        )
        if needed > entry.window.capacity:
            entry.window = entry.window.grown(needed)
        entry.window.push(book)
        if answering is None:
            stats.unserved += 1
            return

        def make(state: VersionState) -> _Pending | None:
            return self._input(entry, state, update.ts_recv)

        if answering.component is not None:
            stats.standing_by += 1
            self._compared(entry, route, None, make)
            return
        if answering.onnx.spec.input.source != "book":
            return  # scored on the feature vector this event produces
        pending = make(answering)
        if pending is None:
            stats.warming += 1
            return
        stats.scored += 1
        pending.publish = True
        self._queue.append(pending)
        self._compared(entry, route, pending, make)

    def _on_features(self, vector: FeatureVector) -> None:
        entry = self._entry(vector.venue, vector.symbol)
        if entry is None:
            return
        route = self.registry.route(self.model)
        answering = self._answering(route, entry.label)
        if answering is None:
            return

        def make(state: VersionState) -> _Pending | None:
            return self._feature_input(entry, state, vector)

        if answering.component is not None:
            self._compared(entry, route, None, make)
            return
        if answering.onnx.spec.input.source != "features":
            return
        stats = self.stats
        stats.feature_updates += 1
        pending = make(answering)
        if pending is None:
            stats.warming += 1
            return
        stats.scored += 1
        pending.publish = True
        self._queue.append(pending)
        self._compared(entry, route, pending, make)

    def _answering(self, route: Route, instrument: str) -> VersionState | None:
        remote = self.remote
        return route.acting(instrument) if remote is None else remote.answering(route, instrument)

    def _compared(
        self,
        entry: _Instrument,
        route: Route,
        acting: _Pending | None,
        make: Callable[[VersionState], _Pending | None],
    ) -> None:
        """Queue what compares the shadow and a routed canary with production on this input.

        Production's answer is the acting one's when production acts, else it
        is scored for the comparison alone; when either side of a pair is a
        component, the in-process side's answer goes to ``remote``.
        """
        production = route.production
        candidates = route.candidates(entry.label)
        if production is None or not candidates:
            if self._queue:
                self._due()
            return
        stats = self.stats
        reference: _Pending | None = None
        if production.component is None:
            if acting is not None and acting.state is production:
                reference = acting
            else:
                reference = make(production)
                if reference is not None:
                    stats.reference_scored += 1
                    self._queue.append(reference)
            if reference is not None and self.remote is not None:
                reference.remote = any(c.component is not None for c in candidates)
        for candidate in candidates:
            if candidate.component is not None:
                continue  # its component answers on its own
            if acting is not None and acting.state is candidate:
                mine = acting
            else:
                found = make(candidate)
                if found is None:
                    continue
                mine = found
                stats.shadow_scored += 1
                self._queue.append(mine)
            if production.component is None:
                mine.against = reference
            else:
                mine.remote = self.remote is not None
        if self._queue:
            self._due()

    def _feature_input(
        self, entry: _Instrument, state: VersionState, vector: FeatureVector
    ) -> _Pending | None:
        spec = state.onnx.spec.input
        if spec.source != "features":
            return None
        key = (vector.columns, spec.columns)
        if key not in self._column_maps:
            where = {column: index for index, column in enumerate(vector.columns)}
            missing = [column for column in spec.columns if column not in where]
            self._column_maps[key] = None if missing else [where[c] for c in spec.columns]
            if missing:
                self._fail(state, 0, f"reads features the engine does not compute: {missing}")
        indices = self._column_maps[key]
        if indices is None:
            return None
        floats = vector.floats()
        values = [floats[index] for index in indices]
        if any(math.isnan(value) for value in values):
            return None  # a feature not defined yet (a window filling, an empty side)
        return _Pending(
            entry, state, spec.normalise_features(values), vector.ts_recv, vector.update
        )

    def _input(self, entry: _Instrument, state: VersionState, ts_recv: int) -> _Pending | None:
        spec = state.onnx.spec.input
        if spec.source != "book" or entry.window.count < spec.window:
            return None
        if spec.levels > entry.window.levels:
            self._fail(state, 1, f"asks for {spec.levels} levels, the engine keeps {self.levels}")
            return None
        inputs = spec.normalise_book(entry.window.latest(spec.window, spec.levels))
        return _Pending(entry, state, inputs, ts_recv, entry.events)

    def _due(self) -> None:
        if not self.batching or len(self._queue) >= self.max_batch:
            self.flush()
            return
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous replay): nothing batches
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    # -- scoring ---------------------------------------------------------------

    def flush(self) -> None:
        """Score every queued input, one batch per version, and publish the acting answers."""
        self._flush_scheduled = False
        queue, self._queue = self._queue, []
        if not queue:
            return
        groups: dict[int, list[_Pending]] = {}
        for pending in queue:
            groups.setdefault(id(pending.state), []).append(pending)
        for items in groups.values():
            self._score(items)
        remote = self.remote
        for pending in queue:
            answer = pending.answer
            if answer is None:
                continue
            if pending.publish:
                self._publish(pending)
            against = pending.against
            if against is not None and against.answer is not None:
                metrics = pending.state.metrics
                metrics.compared += 1
                metrics.agreed += int(answer.argmax() == against.answer.argmax())
            if pending.remote and remote is not None:
                venue, symbol = pending.instrument.key
                remote.answered(pending.state, venue, symbol, pending.ts_recv, int(answer.argmax()))

    def _score(self, items: list[_Pending]) -> None:
        state = items[0].state
        metrics = state.metrics
        batch = np.stack([item.inputs for item in items])
        started = time.perf_counter_ns()
        try:
            answers = state.onnx.predict(batch)
        except Exception as error:  # onnxruntime's own errors: count, say, go on
            self._fail(state, len(items), f"inference raised {error}")
            return
        metrics.latency.observe(time.perf_counter_ns() - started)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        classes = len(state.classes)
        if answers.shape != (len(items), classes):
            self._fail(state, len(items), f"answered shape {list(answers.shape)}")
            return
        sane = np.isfinite(answers).all(axis=1) & (np.abs(answers.sum(axis=1) - 1.0) < 1e-3)
        for item, answer, ok in zip(items, answers, sane, strict=True):
            if not ok:
                self._fail(state, 1, f"answered {answer.tolist()}, not probabilities")
                continue
            item.answer = answer
            metrics.by_class[int(answer.argmax())] += 1

    def _fail(self, state: VersionState, count: int, reason: str) -> None:
        state.metrics.errors += count
        self.stats.failed += count
        if state.metrics.errors <= count:  # a version's first failure is logged, then counted
            log.error("model %s:%s %s", state.name, state.version, reason)

    def _publish(self, pending: _Pending) -> None:
        assert pending.answer is not None
        answer = pending.answer
        entry = pending.instrument
        model = pending.state.onnx
        self.stats.predictions += 1
        pending.state.metrics.published += 1
        self.bus.publish(
            entry.topic,
            Prediction(
                model=model.name,
                version=model.version,
                venue=entry.key[0],
                symbol=entry.key[1],
                ts_recv=pending.ts_recv,
                event=pending.event,
                classes=model.spec.classes,
                probabilities=tuple(map(float, answer)),
                predicted=int(answer.argmax()),
            ),
        )

    def report(self) -> dict[str, Any]:
        """Return the counts, and per version its answers, agreement, errors and latency."""
        versions = {}
        for state in self.registry.versions(self.model):
            metrics = state.metrics
            agreement = metrics.agreement
            versions[state.version] = {
                "stage": state.stage.value,
                "uri": state.model.uri,
                "compared": metrics.compared,
                "predictions": metrics.predictions,
                "by_class": dict(zip(state.classes, metrics.by_class, strict=True)),
                "agreement": None if agreement is None or math.isnan(agreement) else agreement,
                "errors": metrics.errors,
                "batch_p50_ns": metrics.latency.quantile(0.5),
                "batch_p99_ns": metrics.latency.quantile(0.99),
            }
        return {"model": self.model, **vars(self.stats), "versions": versions}
