"""Test a plug-in without a kernel: an opt-in pytest plug-in for plug-in authors.

Enable it with ``pytest -p tradekernel_sdk.testing`` (or
``addopts = "-p tradekernel_sdk.testing"`` in the plug-in's pytest settings). It
provides two fixtures:

``strategy_harness``
    Build a strategy with a validated configuration and an in-memory context,
    feed it market and order events, and read back the intents it submitted::

        def test_buys_on_bid_imbalance(strategy_harness):
            harness = strategy_harness(Imbalance, {"venue": "binance", "symbol": "BTCUSDT"})
            intents = harness.run([snapshot, delta])
            assert [intent.side for intent in intents] == [OrderSide.BUY]

``plugin_registrations``
    Load a plug-in module the way the kernel does (API version check, unknown
    hooks refused, registration hooks called) and return what it registered.

The context is a small working implementation, not a mock: it keeps books from
the book events it is fed, positions from fills of the orders the strategy
submitted, the working orders, and timers driven by the events' timestamps.
It does not simulate a venue: answers to orders are events the test feeds.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pluggy
import pytest

from tradekernel_sdk import hookspecs
from tradekernel_sdk.orders import (
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
)
from tradekernel_sdk.plugin import (
    API_VERSION,
    PROJECT_NAME,
    RegistrationKind,
    check_api_version,
    collect_registrations,
    declared_api_version,
)
from tradekernel_sdk.strategy import (
    OrderIntent,
    Strategy,
    dispatch_event,
    load_strategy_config,
)
from tradekernel_sdk.types import (
    Bar,
    BookDelta,
    BookSnapshot,
    BookStatus,
    Level,
    MarketEvent,
    Quote,
    Trade,
)

__all__ = [
    "HarnessFactory",
    "InMemoryBook",
    "InMemoryContext",
    "StrategyHarness",
    "SubmittedIntent",
    "event_time",
    "load_plugin",
    "plugin_registrations",
    "strategy_harness",
]

S = TypeVar("S", bound=Strategy)

Event = MarketEvent | OrderEvent
"""Anything a harness can be fed."""


class InMemoryBook:
    """A plain dictionary book per side, enough for tests (not for the hot path)."""

    def __init__(self) -> None:
        """Start empty."""
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply(self, update: BookDelta | BookSnapshot) -> None:
        """Replace the book with a snapshot, or apply a delta (size 0 deletes a level)."""
        if isinstance(update, BookSnapshot):
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, update.bids), (self.asks, update.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def best_bid(self) -> Level | None:
        """Return the highest bid, or ``None``."""
        if not self.bids:
            return None
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        """Return the lowest ask, or ``None``."""
        if not self.asks:
            return None
        price = min(self.asks)
        return price, self.asks[price]

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Return bids best first, ``depth`` of them at most."""
        return sorted(self.bids.items(), reverse=True)[:depth]

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Return asks best first, ``depth`` of them at most."""
        return sorted(self.asks.items())[:depth]


@dataclass(frozen=True)
class SubmittedIntent:
    """An intent the strategy submitted, with the id it got and when."""

    client_order_id: str
    intent: OrderIntent
    ts_ns: int


@dataclass
class _Timer:
    interval_ns: int
    due_ns: int


class InMemoryContext:
    """A :class:`~tradekernel_sdk.StrategyContext` that keeps everything in memory."""

    def __init__(self, *, name: str = "strategy", start_ns: int = 0) -> None:
        """Start with no books, flat positions and the clock at ``start_ns``."""
        self.name = name
        self.log = logging.getLogger(f"tradekernel.strategy.{name}")
        self.now_ns = start_ns
        self.books: dict[tuple[str, str], InMemoryBook] = {}
        self.positions: dict[tuple[str, str], int] = {}
        self.submitted: list[SubmittedIntent] = []
        self.cancel_requests: list[str] = []
        self.working: dict[str, OrderIntent] = {}
        self.timers: dict[str, _Timer] = {}
        self._ids = itertools.count(1)

    # StrategyContext

    def clock(self) -> int:
        """Return the harness's time: the latest event's timestamp or timer deadline."""
        return self.now_ns

    def book(self, venue: str, symbol: str) -> InMemoryBook | None:
        """Return the book built from the events fed so far, or ``None``."""
        return self.books.get((venue, symbol))

    def position(self, venue: str, symbol: str) -> int:
        """Return the net filled quantity of the strategy's orders."""
        return self.positions.get((venue, symbol), 0)

    def submit(self, intent: OrderIntent) -> str:
        """Record the intent as a working order and return its new client order id."""
        client_order_id = f"{self.name}-{next(self._ids)}"
        self.submitted.append(SubmittedIntent(client_order_id, intent, self.now_ns))
        self.working[client_order_id] = intent
        return client_order_id

    def cancel(self, client_order_id: str) -> None:
        """Record the cancel request; the order stays working until an event ends it."""
        self.cancel_requests.append(client_order_id)

    def cancel_all(self, symbol: str | None = None) -> None:
        """Record a cancel request for each working order (on ``symbol`` if given)."""
        for client_order_id, intent in self.working.items():
            if symbol is None or intent.symbol == symbol:
                self.cancel_requests.append(client_order_id)

    def set_timer(self, name: str, interval_ns: int) -> None:
        """Fire ``name`` every ``interval_ns`` from now, replacing a same-named timer."""
        if interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval_ns must be positive, got {interval_ns}")
        self.timers[name] = _Timer(interval_ns, self.now_ns + interval_ns)

    def cancel_timer(self, name: str) -> None:
        """Stop the timer ``name`` if there is one."""
        self.timers.pop(name, None)

    # Harness side

    def apply(self, event: Event) -> None:
        """Update books, positions and working orders from one event."""
        if isinstance(event, BookDelta | BookSnapshot):
            key = (event.venue, event.symbol)
            self.books.setdefault(key, InMemoryBook()).apply(event)
        elif isinstance(event, OrderFilled):
            intent = self.working.get(event.client_order_id)
            if intent is None:
                raise ValueError(f"fill for {event.client_order_id!r}, not a working order")
            signed = event.quantity if intent.side is OrderSide.BUY else -event.quantity
            key = (intent.venue, intent.symbol)
            self.positions[key] = self.positions.get(key, 0) + signed
            if event.leaves_quantity == 0:
                del self.working[event.client_order_id]
        elif isinstance(event, OrderCanceled | OrderExpired | OrderRejected):
            self.working.pop(event.client_order_id, None)

    def next_timer(self, until_ns: int) -> tuple[str, int] | None:
        """Return the earliest timer due at or before ``until_ns`` and advance it."""
        due = [(timer.due_ns, name) for name, timer in self.timers.items()]
        if not due:
            return None
        due_ns, name = min(due)
        if due_ns > until_ns:
            return None
        self.timers[name].due_ns = due_ns + self.timers[name].interval_ns
        self.now_ns = max(self.now_ns, due_ns)
        return name, due_ns


def event_time(event: Event) -> int:
    """Return when ``event`` happens on the harness's clock."""
    match event:
        case Bar():
            return event.ts_open + event.interval_ns
        case BookDelta() | BookSnapshot() | Quote() | Trade() | BookStatus():
            return event.ts_recv
        case _:
            return event.ts_event


class StrategyHarness(Generic[S]):
    """One strategy, its in-memory context, and the events fed to it."""

    def __init__(
        self,
        strategy_cls: type[S],
        config: Mapping[str, Any] | Strategy.Config | None = None,
        *,
        name: str = "strategy",
        start_ns: int = 0,
    ) -> None:
        """Validate ``config`` as the kernel would and build the strategy."""
        if not isinstance(config, Strategy.Config):
            config = load_strategy_config(strategy_cls, config or {}, f"strategies.{name}")
        self.context = InMemoryContext(name=name, start_ns=start_ns)
        self.strategy: S = strategy_cls(self.context, config)
        self.started = False
        self.stopped = False

    @property
    def intents(self) -> list[OrderIntent]:
        """Return every intent submitted so far, in order."""
        return [submitted.intent for submitted in self.context.submitted]

    @property
    def submitted(self) -> list[SubmittedIntent]:
        """Return every intent submitted so far with its client order id and time."""
        return list(self.context.submitted)

    @property
    def cancels(self) -> list[str]:
        """Return the client order ids the strategy asked to cancel, in order."""
        return list(self.context.cancel_requests)

    def start(self) -> None:
        """Call ``on_start`` (once)."""
        if not self.started:
            self.started = True
            self.strategy.on_start()

    def stop(self) -> None:
        """Call ``on_stop`` (once, and only after a start)."""
        if self.started and not self.stopped:
            self.stopped = True
            self.strategy.on_stop()

    def advance(self, to_ns: int) -> None:
        """Move the clock to ``to_ns``, firing the timers due on the way in time order."""
        while (fired := self.context.next_timer(to_ns)) is not None:
            self.strategy.on_timer(*fired)
        self.context.now_ns = max(self.context.now_ns, to_ns)

    def feed(self, event: Event) -> None:
        """Deliver one event: timers due before it fire first; start the strategy if needed."""
        self.start()
        self.advance(event_time(event))
        self.context.apply(event)
        book = None
        if isinstance(event, BookDelta | BookSnapshot):
            book = self.context.book(event.venue, event.symbol)
        dispatch_event(self.strategy, event, book)

    def run(self, events: Iterable[Event]) -> list[OrderIntent]:
        """Start, feed every event, stop, and return the intents submitted meanwhile."""
        first = len(self.context.submitted)
        self.start()
        for event in events:
            self.feed(event)
        self.stop()
        return [submitted.intent for submitted in self.context.submitted[first:]]


class HarnessFactory:
    """What the ``strategy_harness`` fixture returns: call it to get a harness."""

    def __init__(self) -> None:
        """Start with no harnesses."""
        self.harnesses: list[StrategyHarness[Any]] = []

    def __call__(
        self,
        strategy_cls: type[S],
        config: Mapping[str, Any] | Strategy.Config | None = None,
        *,
        name: str = "strategy",
        start_ns: int = 0,
    ) -> StrategyHarness[S]:
        """Build a harness for ``strategy_cls`` (see :class:`StrategyHarness`)."""
        harness = StrategyHarness(strategy_cls, config, name=name, start_ns=start_ns)
        self.harnesses.append(harness)
        return harness

    def stop_all(self) -> None:
        """Stop every harness that was started and not stopped."""
        for harness in self.harnesses:
            harness.stop()


def load_plugin(
    plugin: object, name: str = "plugin-under-test"
) -> dict[RegistrationKind, dict[str, Any]]:
    """Load ``plugin`` as the kernel would and return what it registers, by kind.

    Raise :class:`~tradekernel_sdk.plugin.ApiVersionError` for a missing or
    incompatible ``TRADEKERNEL_API``, :class:`pluggy.PluginValidationError`
    for an unknown hook or a wrong hook signature, and
    :class:`~tradekernel_sdk.plugin.RegistrationError` for a bad registration.
    """
    check_api_version(declared_api_version(plugin), API_VERSION)
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(plugin, name=name)
    manager.check_pending()
    return collect_registrations(manager, plugin)


@pytest.fixture
def strategy_harness() -> Iterator[HarnessFactory]:
    """Return a factory of strategy harnesses; the ones left running are stopped after."""
    factory = HarnessFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def plugin_registrations() -> Callable[..., dict[RegistrationKind, dict[str, Any]]]:
    """Return :func:`load_plugin`: load a plug-in and return what it registers."""
    return load_plugin
