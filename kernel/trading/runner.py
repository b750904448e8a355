"""Run strategies: deliver their market data and order events, isolate their faults.

Each strategy gets the events of its own ``venue``/``symbol`` from the bus, in
callbacks wrapped so that an exception is counted and logged, and a callback
that runs past its time budget is counted and reported. After
``max_errors`` exceptions a strategy is quarantined: it receives nothing more,
and its working orders are cancelled (``cancel_on_quarantine``). The kernel
and the other strategies go on.

Intents become orders through :meth:`KernelStrategyContext.submit`: the
client order id is ``<strategy>-<n>``, counting on from the journal after a
restart, and the order manager applies risk and the journal before routing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel.bus import STRATEGY_PRIORITY, Bus, topics
from kernel.metrics import TickToOrder
from kernel.orders import OrderManager
from kernel.trading.context import MarketData, VenueMap
from tradekernel_sdk.orders import OrderEvent, OrderFilled, OrderRequest
from tradekernel_sdk.predictions import Prediction, prediction_topic
from tradekernel_sdk.strategy import BookView, OrderIntent, Strategy
from tradekernel_sdk.types import BookDelta, BookSnapshot, BookStatus, Quote, Trade

__all__ = ["KernelStrategyContext", "RunnerPolicy", "StrategyRunner", "StrategySlot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerPolicy:
    """How the runner treats misbehaving strategies."""

    max_errors: int = 10
    """Exceptions after which a strategy is quarantined (0: never)."""
    budget_ns: int = 1_000_000
    """A callback running longer than this counts as an overrun."""
    max_overruns: int = 0
    """Overruns after which a strategy is quarantined (0: never)."""
    cancel_on_quarantine: bool = True
    """Cancel a quarantined strategy's working orders."""


@dataclass
class StrategySlot:
    """One running strategy and what the runner counts about it."""

    name: str
    strategy: Strategy
    venue: str
    symbol: str
    context: KernelStrategyContext
    errors: int = 0
    overruns: int = 0
    callbacks: int = 0
    quarantined: bool = False
    quarantine_reason: str = ""
    disabled: bool = False
    """Switched off by an operator (its plug-in disabled) until :meth:`StrategyRunner.enable`."""
    disabled_reason: str = ""
    started: bool = False
    slowest_ns: int = 0
    subscriptions: list[tuple[str, Callable[[Any], None]]] = field(default_factory=list)


class KernelStrategyContext:
    """The kernel's side of :class:`~tradekernel_sdk.strategy.StrategyContext`."""

    def __init__(
        self,
        name: str,
        *,
        orders: OrderManager,
        market: MarketData,
        venues: VenueMap,
        clock: Callable[[], int],
        first_sequence: int = 1,
    ) -> None:
        self.name = name
        self._orders = orders
        self._market = market
        self._venues = venues
        self._clock = clock
        self._next = first_sequence
        self._log = logging.getLogger(f"tradekernel.strategy.{name}")
        self.timers: dict[str, tuple[int, int]] = {}  # name -> (interval, next due)

    @property
    def log(self) -> logging.Logger:
        """Return the strategy's logger."""
        return self._log

    def clock(self) -> int:
        """Return the kernel's time in nanoseconds (market time in a replay)."""
        return self._clock()

    def book(self, venue: str, symbol: str) -> BookView | None:
        """Return the live book of ``symbol`` on the market venue ``venue``."""
        return self._market.book(venue, symbol)

    def position(self, venue: str, symbol: str) -> int:
        """Return the strategy's net position, held on the venue orders are routed to."""
        return self._orders.portfolio.quantity(self._venues.trading_venue(venue), symbol)

    def submit(self, intent: OrderIntent) -> str:
        """Turn an intent into an order through risk and the journal; return its client id."""
        client_order_id = f"{self.name}-{self._next}"
        self._next += 1
        request = OrderRequest(
            client_order_id=client_order_id,
            venue=self._venues.trading_venue(intent.venue),
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            quantity=intent.quantity,
            price=intent.price,
            time_in_force=intent.time_in_force,
            ts_submit=self._clock(),
        )
        self._orders.submit(request, strategy=self.name)
        return client_order_id

    def cancel(self, client_order_id: str) -> None:
        """Cancel one of this strategy's orders (others' are refused with a log line)."""
        order = self._orders.orders.get(client_order_id)
        if order is None or order.strategy != self.name:
            self._log.warning("cannot cancel %s: not an order of this strategy", client_order_id)
            return
        self._orders.cancel(client_order_id)

    def cancel_all(self, symbol: str | None = None) -> None:
        """Cancel every working order of this strategy (on ``symbol`` only, if given)."""
        for order in self._orders.open_orders(symbol=symbol):
            if order.strategy == self.name:
                self._orders.cancel(order.client_order_id)

    def set_timer(self, name: str, interval_ns: int) -> None:
        """Fire ``on_timer(name, ts)`` every ``interval_ns`` of kernel time from now."""
        if interval_ns <= 0:
            raise ValueError(f"timer interval must be positive, got {interval_ns}")
        self.timers[name] = (interval_ns, self._clock() + interval_ns)

    def cancel_timer(self, name: str) -> None:
        """Stop the timer ``name``."""
        self.timers.pop(name, None)


class StrategyRunner:
    """Deliver events to strategies with fault isolation and time budgets."""

    def __init__(
        self,
        bus: Bus,
        *,
        orders: OrderManager,
        market: MarketData,
        venues: VenueMap,
        clock: Callable[[], int],
        policy: RunnerPolicy | None = None,
        probe: TickToOrder | None = None,
    ) -> None:
        self.probe = probe
        self.bus = bus
        self.orders = orders
        self.market = market
        self.venues = venues
        self.clock = clock
        self.policy = policy or RunnerPolicy()
        self.slots: dict[str, StrategySlot] = {}

    def add(
        self,
        name: str,
        strategy_class: type[Strategy],
        config: Strategy.Config,
    ) -> StrategySlot:
        """Build a strategy with its context; it receives events once :meth:`start` runs."""
        if name in self.slots:
            raise ValueError(f"a strategy named {name!r} already runs")
        venue = getattr(config, "venue", None)
        symbol = getattr(config, "symbol", None)
        if not isinstance(venue, str) or not isinstance(symbol, str):
            raise ValueError(f"strategies.{name}: the configuration needs venue and symbol")
        prefix = f"{name}-"
        used = [
            int(order_id[len(prefix) :])
            for order_id in self.orders.orders
            if order_id.startswith(prefix) and order_id[len(prefix) :].isdigit()
        ]
        context = KernelStrategyContext(
            name,
            orders=self.orders,
            market=self.market,
            venues=self.venues,
            clock=self.clock,
            first_sequence=max(used, default=0) + 1,
        )
        slot = StrategySlot(name, strategy_class(context, config), venue, symbol, context)
        self.slots[name] = slot
        return slot

    def start(self) -> None:
        """Call every strategy's ``on_start`` and subscribe it to its events."""
        for slot in self.slots.values():
            if not slot.disabled:
                self._start(slot)

    def _start(self, slot: StrategySlot) -> None:
        slot.started = True
        self._call(slot, slot.strategy.on_start)
        if not slot.quarantined:
            self._subscribe(slot)

    def stop(self) -> None:
        """Unsubscribe every strategy and call its ``on_stop``."""
        for slot in self.slots.values():
            self._unsubscribe(slot)
            if slot.started and not slot.quarantined and not slot.disabled:
                self._call(slot, slot.strategy.on_stop)

    def disable(self, name: str, reason: str) -> None:
        """Stop delivering to strategy ``name`` and, as a quarantine does, cancel its orders.

        Before :meth:`start` it only keeps the strategy from starting.
        """
        slot = self.slots[name]
        if slot.disabled:
            return
        slot.disabled = True
        slot.disabled_reason = reason
        self._unsubscribe(slot)
        log.warning("strategy %s disabled: %s", name, reason)
        if slot.started:
            self._cancel_orders_of(slot)

    def enable(self, name: str) -> None:
        """Resume delivering to strategy ``name`` (starting it if it never started)."""
        slot = self.slots[name]
        if not slot.disabled:
            return
        slot.disabled = False
        slot.disabled_reason = ""
        log.info("strategy %s enabled", name)
        if not slot.started:
            self._start(slot)
        elif not slot.quarantined:
            self._subscribe(slot)

    # -- delivery ------------------------------------------------------------

    def _subscribe(self, slot: StrategySlot) -> None:
        venue, symbol, strategy = slot.venue, slot.symbol, slot.strategy
        market = self.market

        def on_book(update: BookDelta | BookSnapshot) -> None:
            book = market.book(venue, symbol)
            if book is not None:
                self._call(slot, strategy.on_book, update, book)

        def on_status(status: BookStatus) -> None:
            self._call(slot, strategy.on_book_status, status)

        def on_quote(quote: Quote) -> None:
            self._call(slot, strategy.on_quote, quote)

        def on_trade(trade: Trade) -> None:
            self._call(slot, strategy.on_trade, trade)

        def on_order_event(event: OrderEvent) -> None:
            self._call(slot, strategy.on_order_event, event)
            if isinstance(event, OrderFilled):
                self._call(slot, strategy.on_fill, event)

        def on_prediction(prediction: Prediction) -> None:
            self._call(slot, strategy.on_prediction, prediction)

        slot.subscriptions = [
            (topics.book(venue, symbol), on_book),
            (topics.snapshot(venue, symbol), on_book),
            (topics.book_status(venue, symbol), on_status),
            (topics.quote(venue, symbol), on_quote),
            (topics.trade(venue, symbol), on_trade),
            (topics.strategy_events(slot.name), on_order_event),
            (prediction_topic(venue, symbol), on_prediction),
        ]
        for pattern, handler in slot.subscriptions:
            self.bus.subscribe(pattern, handler, priority=STRATEGY_PRIORITY)

    def _unsubscribe(self, slot: StrategySlot) -> None:
        for pattern, handler in slot.subscriptions:
            self.bus.unsubscribe(pattern, handler)
        slot.subscriptions = []

    def _call(self, slot: StrategySlot, callback: Callable[..., None], *args: Any) -> None:
        if slot.quarantined:
            return
        slot.callbacks += 1
        started = time.perf_counter_ns()
        probe = self.probe
        # Only orders submitted inside a strategy callback count as tick-to-order;
        # restoring the outer stamp afterwards keeps API and timer orders out.
        outer_stamp = 0
        if probe is not None:
            outer_stamp = probe.strategy_ns
            probe.strategy_ns = started
        try:
            callback(*args)
        except Exception as error:
            slot.errors += 1
            log.exception(
                "strategy %s raised in %s (error %d)",
                slot.name,
                getattr(callback, "__name__", "callback"),
                slot.errors,
            )
            if self.policy.max_errors and slot.errors >= self.policy.max_errors:
                self.quarantine(slot, f"{slot.errors} errors, last: {error!r}")
        finally:
            if probe is not None:
                probe.strategy_ns = outer_stamp
            elapsed = time.perf_counter_ns() - started
            slot.slowest_ns = max(slot.slowest_ns, elapsed)
            if elapsed > self.policy.budget_ns:
                slot.overruns += 1
                if slot.overruns == 1 or slot.overruns % 100 == 0:
                    log.warning(
                        "strategy %s: %s took %.3f ms, over its %.3f ms budget (%d overruns)",
                        slot.name,
                        getattr(callback, "__name__", "callback"),
                        elapsed / 1e6,
                        self.policy.budget_ns / 1e6,
                        slot.overruns,
                    )
                if (
                    self.policy.max_overruns
                    and slot.overruns >= self.policy.max_overruns
                    and not slot.quarantined
                ):
                    self.quarantine(slot, f"{slot.overruns} callbacks over budget")
        self._fire_timers(slot)

    def _fire_timers(self, slot: StrategySlot) -> None:
        timers = slot.context.timers
        if not timers or slot.quarantined:
            return
        now = self.clock()
        for name, (interval, due) in list(timers.items()):
            if now >= due and name in timers:
                timers[name] = (interval, now + interval)
                self._call_timer(slot, name, now)

    def _call_timer(self, slot: StrategySlot, name: str, now: int) -> None:
        started = time.perf_counter_ns()
        try:
            slot.strategy.on_timer(name, now)
        except Exception:
            slot.errors += 1
            log.exception("strategy %s raised in on_timer(%r)", slot.name, name)
            if self.policy.max_errors and slot.errors >= self.policy.max_errors:
                self.quarantine(slot, f"{slot.errors} errors")
        elapsed = time.perf_counter_ns() - started
        slot.slowest_ns = max(slot.slowest_ns, elapsed)
        if elapsed > self.policy.budget_ns:
            slot.overruns += 1

    def quarantine(self, slot: StrategySlot, reason: str) -> None:
        """Stop delivering to ``slot`` and, per policy, cancel its working orders."""
        if slot.quarantined:
            return
        slot.quarantined = True
        slot.quarantine_reason = reason
        self._unsubscribe(slot)
        log.error("strategy %s quarantined: %s", slot.name, reason)
        self._cancel_orders_of(slot)

    def _cancel_orders_of(self, slot: StrategySlot) -> None:
        if self.policy.cancel_on_quarantine:
            for order in self.orders.open_orders():
                if order.strategy == slot.name:
                    self.orders.cancel(order.client_order_id)

    def report(self) -> Mapping[str, Mapping[str, Any]]:
        """Return each strategy's counters."""
        return {
            name: {
                "callbacks": slot.callbacks,
                "errors": slot.errors,
                "overruns": slot.overruns,
                "slowest_ns": slot.slowest_ns,
                "quarantined": slot.quarantined,
                "quarantine_reason": slot.quarantine_reason,
            }
            for name, slot in self.slots.items()
        }
