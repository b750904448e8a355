"""One out-of-process component: dial (or spawn) it, hold its session, bring it back.

A :class:`ComponentLink` is the kernel's client of one ``ComponentService``.
It calls ``Describe``, opens the ``Session`` and streams the component the
events it subscribed to from the bus, through a bounded queue: a full queue
drops book deltas of that book until one conflated snapshot of the live book
is sent in their place, and drops quotes and trades; every drop is counted.
The component's own order updates and events are never dropped.

Intents coming back take the in-process strategies' path: a
:class:`ComponentContext` (a :class:`~kernel.trading.runner.KernelStrategyContext`)
hands them to the order manager, which applies risk and journals before it
routes. A component that is not a strategy is refused any order.

When the session ends (the process crashed, the connection dropped, three
heartbeat intervals passed in silence) the component is marked down, its
working orders are cancelled as a quarantined strategy's are, and the link
dials again, or respawns the command, after an exponential backoff with
jitter. The kernel and its other strategies trade on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import msgspec

from kernel.api.convert import instrument_message
from kernel.api.tls import channel_credentials
from kernel.bus import STRATEGY_PRIORITY, Bus, topics
from kernel.components.convert import IntentError, intent_from_message, request_for
from kernel.orders import OrderManager
from kernel.service.config import ComponentSpec
from kernel.trading.context import MarketData, VenueMap
from kernel.trading.runner import KernelStrategyContext
from tradekernel_sdk.proto.tradekernel.v1 import (
    components_pb2,
    components_pb2_grpc,
    market_data_pb2,
)
from tradekernel_sdk.strategy import OrderIntent
from tradekernel_sdk.types import BookSnapshot, BookState, Instrument

__all__ = [
    "LISTEN_ENV",
    "READY_PREFIX",
    "ComponentContext",
    "ComponentLink",
    "ComponentState",
    "ComponentStats",
    "SessionEnded",
]

log = logging.getLogger(__name__)

LISTEN_ENV = "TRADEKERNEL_COMPONENT_LISTEN"
"""Set for a spawned command: the address it should listen on (``127.0.0.1:0``)."""

READY_PREFIX = "tradekernel component listening on "
"""A spawned command prints this and its ``host:port`` on stdout once it serves."""

API_VERSION = "v1"
_HEARTBEATS_MISSED = 3
_SPAWN_TIMEOUT_S = 30.0
_STABLE_SESSION_S = 10.0  # a session this long resets the backoff
_KINDS = {
    components_pb2.COMPONENT_KIND_STRATEGY: "strategy",
    components_pb2.COMPONENT_KIND_DETECTOR: "detector",
    components_pb2.COMPONENT_KIND_MODEL: "model",
    components_pb2.COMPONENT_KIND_SIGNAL: "signal",
}
_LOG_LEVELS = {
    components_pb2.LOG_LEVEL_DEBUG: logging.DEBUG,
    components_pb2.LOG_LEVEL_INFO: logging.INFO,
    components_pb2.LOG_LEVEL_WARNING: logging.WARNING,
    components_pb2.LOG_LEVEL_ERROR: logging.ERROR,
}


class ComponentState(enum.Enum):
    """Where a component is."""

    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    STOPPED = "stopped"


class SessionEnded(Exception):
    """The session is over; the message says why."""


class HeartbeatMissed(SessionEnded):
    """The component said nothing for three heartbeat intervals."""


@dataclass
class ComponentStats:
    """What the kernel counts about one component."""

    sessions: int = 0
    downs: int = 0
    spawns: int = 0
    sent: int = 0
    dropped: int = 0
    """Market events dropped because the queue was full (books: replaced by a snapshot)."""
    conflated: int = 0
    """Snapshots sent in place of dropped book deltas."""
    intents: int = 0
    refused: int = 0
    """Commands answered with an error."""
    callback_errors: int = 0
    """Exceptions the component reported from its callbacks."""
    outputs: int = 0
    """Signals, detections and predictions received."""


class ComponentContext(KernelStrategyContext):
    """An in-process strategy's context, for a component whose intents carry their own ids."""

    def submit_as(self, intent: OrderIntent, client_order_id: str) -> str:
        """Place ``intent`` under ``client_order_id`` through risk and the journal."""
        routed = msgspec.structs.replace(intent, venue=self._venues.trading_venue(intent.venue))
        self._orders.submit(routed.to_request(client_order_id, self.clock()), strategy=self.name)
        return client_order_id


def _request(**message: Any) -> components_pb2.SessionRequest:
    return components_pb2.SessionRequest(**message)


class ComponentLink:
    """The kernel's side of one component, from its first dial to the kernel's stop."""

    def __init__(
        self,
        spec: ComponentSpec,
        *,
        bus: Bus,
        orders: OrderManager,
        market: MarketData,
        venues: VenueMap,
        clock: Callable[[], int],
        instruments: Callable[[], Iterable[Instrument]],
        kernel_version: str = "",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.bus = bus
        self.orders = orders
        self.market = market
        self.venues = venues
        self.clock = clock
        self.instruments = instruments
        self.kernel_version = kernel_version
        self.credentials = credentials or _credentials(spec)
        self.context = ComponentContext(
            spec.name, orders=orders, market=market, venues=venues, clock=clock
        )
        self.state = ComponentState.CONNECTING
        self.down_reason = ""
        self.kind = ""
        self.description: components_pb2.DescribeResponse | None = None
        self.stats = ComponentStats()
        self.address = spec.endpoint
        self.process: asyncio.subprocess.Process | None = None
        self.sequence = 0
        self.acked = 0
        self._queue: deque[tuple[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        self._resync: set[tuple[str, str]] = set()
        self._subscriptions: list[tuple[str, Callable[[Any], None]]] = []
        self._subscribed: set[tuple[str, str, int]] = set()
        self._stopping = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._call: Any = None
        self._last_heard = 0.0
        self._known: dict[tuple[str, str], Instrument] = {}

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start dialing (or spawning) in the background."""
        self._task = asyncio.create_task(self._supervise(), name=f"component:{self.name}")

    async def first_attempt(self, timeout: float) -> None:
        """Wait until the first session is up or has failed (at most ``timeout`` seconds)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_attempt.wait()

    async def wait_up(self, timeout: float) -> None:
        """Wait until a session is up; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._up.wait()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Tell the component the kernel is stopping, end the session, stop a spawned process."""
        self._stopping.set()
        if self._call is not None and self.state is ComponentState.UP:
            shutdown = components_pb2.Shutdown(
                reason="kernel stopping", grace_ms=int(grace_s * 1000)
            )
            self._queue.append(("message", _request(shutdown=shutdown)))
            self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._end_process()
        self.state = ComponentState.STOPPED

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the component has handled everything sent to it (a lockstep replay)."""
        async with asyncio.timeout(timeout):
            while self._queue or self.acked < self.sequence:
                if self.state is not ComponentState.UP:
                    raise SessionEnded(f"component {self.name} is {self.state.value}")
                self._acked.clear()
                await self._acked.wait()

    # -- supervision ---------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                address = await self._target()
                await self._session(address)
                reason = "session ended"
            except HeartbeatMissed as error:
                reason = str(error)
                # A hung process would hang the next session too: start a new one.
                await self._end_process()
            except SessionEnded as error:
                reason = str(error)
            except grpc.aio.AioRpcError as error:
                reason = f"{error.code().name}: {error.details()}"
            except (OSError, ValueError) as error:
                reason = str(error)
            finally:
                self._first_attempt.set()
            if self._stopping.is_set():
                break
            self._mark_down(reason)
            if time.monotonic() - started > _STABLE_SESSION_S:
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            log.info("component %s: next attempt in %.0f ms", self.name, delay * 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(
            self.spec.backoff_max_ms, self.spec.backoff_initial_ms * 2 ** min(attempt, 30)
        )
        return float(ceiling / 2 + random.uniform(0, ceiling / 2)) / 1000

    def _mark_down(self, reason: str) -> None:
        was_up = self.state is ComponentState.UP
        self.state = ComponentState.DOWN
        self.down_reason = reason
        self._up.clear()
        if not was_up:
            log.warning("component %s unavailable: %s", self.name, reason)
            return
        self.stats.downs += 1
        log.error("component %s down: %s", self.name, reason)
        if self.spec.cancel_on_down:
            cancelled = 0
            for order in self.orders.open_orders():
                if order.strategy == self.name:
                    self.orders.cancel(order.client_order_id)
                    cancelled += 1
            if cancelled:
                log.warning("component %s: cancelled %d working orders", self.name, cancelled)

    async def _target(self) -> str:
        """Return the address to dial, spawning the command when it is not running."""
        if not self.spec.command:
            return self.spec.endpoint
        if self.process is not None and self.process.returncode is None:
            return self.address
        return await self._spawn()

    async def _spawn(self) -> str:
        await self._end_process()
        command = list(self.spec.command)
        environment = {**os.environ, LISTEN_ENV: "127.0.0.1:0", "PYTHONUNBUFFERED": "1"}
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, env=environment
        )
        self.stats.spawns += 1
        assert self.process.stdout is not None
        log.info("component %s: spawned pid %d: %s", self.name, self.process.pid, " ".join(command))
        try:
            async with asyncio.timeout(_SPAWN_TIMEOUT_S):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        code = await self.process.wait()
                        raise SessionEnded(f"command exited with status {code} before serving")
                    text = line.decode(errors="replace").strip()
                    if text.startswith(READY_PREFIX):
                        self.address = text[len(READY_PREFIX) :].strip()
                        break
                    log.info("component %s: %s", self.name, text)
        except TimeoutError:
            raise SessionEnded(
                f"command did not print {READY_PREFIX!r} within {_SPAWN_TIMEOUT_S:.0f} s"
            ) from None
        self._drain = asyncio.create_task(self._drain_stdout(self.process.stdout))
        return self.address

    async def _drain_stdout(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            log.info("component %s: %s", self.name, line.decode(errors="replace").rstrip())

    async def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(2.0):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    # -- the session ---------------------------------------------------------

    async def _session(self, address: str) -> None:
        if self.credentials is not None:
            channel = grpc.aio.secure_channel(address, self.credentials)
        else:
            channel = grpc.aio.insecure_channel(address)
        async with channel:
            stub = components_pb2_grpc.ComponentServiceStub(channel)
            described = await stub.Describe(
                components_pb2.DescribeRequest(
                    kernel_version=self.kernel_version, api_version=API_VERSION
                ),
                timeout=5.0,
            )
            self._check(described)
            call = stub.Session()
            self._call = call
            try:
                await self._run(call, described)
            finally:
                self._call = None
                self._unsubscribe_all()
                call.cancel()

    def _check(self, described: components_pb2.DescribeResponse) -> None:
        kind = _KINDS.get(described.kind)
        if kind is None:
            raise SessionEnded(f"component {described.name!r} did not say what kind it is")
        if described.api_version.split(".")[0] != API_VERSION:
            raise SessionEnded(
                f"component {described.name!r} speaks API {described.api_version!r}, "
                f"the kernel {API_VERSION}"
            )
        self.kind = kind
        self.description = described

    async def _run(self, call: Any, described: components_pb2.DescribeResponse) -> None:
        self._queue.clear()
        self._resync.clear()
        self.context.timers.clear()
        self.sequence = self.acked = 0
        session_id = uuid.uuid4().hex[:12]
        start = components_pb2.SessionStart(
            session_id=session_id,
            component=self.name,
            config_json=msgspec.json.encode(dict(self.spec.settings)).decode()
            if self.spec.settings
            else "",
            heartbeat_interval_ms=self.spec.heartbeat_ms,
        )
        self._known = {(item.venue, item.symbol): item for item in self.instruments()}
        start.instruments.extend(instrument_message(item) for item in self._known.values())
        self._queue.append(("message", _request(start=start)))
        for subscription in described.subscriptions:
            error = self._subscribe(subscription)
            if error:
                log.warning("component %s: %s", self.name, error)
        own = [
            (topics.order_updates(self.name), self._on_own_order),
            (topics.strategy_events(self.name), self._on_own_order),
        ]
        for pattern, handler in own:
            self.bus.subscribe(pattern, handler, priority=STRATEGY_PRIORITY)
        self._subscriptions.extend(own)
        # The component's orders as the kernel knows them: its positions after a restart.
        for order in self.orders.orders.values():
            if order.strategy == self.name:
                self._queue.append(("event", order.snapshot()))
        self._last_heard = time.monotonic()
        self.stats.sessions += 1
        self.state = ComponentState.UP
        self.down_reason = ""
        self._up.set()
        self._first_attempt.set()
        log.info(
            "component %s up: %s %s %s at %s (session %s)",
            self.name,
            self.kind,
            described.name,
            described.version,
            self.address,
            session_id,
        )
        self._wake.set()
        tasks = [
            asyncio.create_task(self._write(call)),
            asyncio.create_task(self._read(call)),
            asyncio.create_task(self._watch()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            failure = task.exception()
            if failure is not None:
                raise failure

    async def _write(self, call: Any) -> None:
        queue, wake = self._queue, self._wake
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            kind, item = queue.popleft()
            if kind == "resync":
                message = self._snapshot(item)
                if message is None:
                    continue
            elif kind == "message":
                message = item
            else:
                venue = self.venues.market_venue(getattr(item, "venue", ""))
                message = request_for(item, self._instrument(venue, item.symbol))
            self.sequence += 1
            message.sequence = self.sequence
            message.clock = self.clock()
            await call.write(message)
            self.stats.sent += 1
            if message.HasField("shutdown"):
                await call.done_writing()
                return

    def _snapshot(self, key: tuple[str, str]) -> components_pb2.SessionRequest | None:
        self._resync.discard(key)
        venue, symbol = key
        book = self.market.book(venue, symbol)
        if book is None or self.market.book_state(venue, symbol) is not BookState.VALID:
            return None
        self.stats.conflated += 1
        snapshot = BookSnapshot(
            venue,
            symbol,
            tuple(book.bid_levels()),
            tuple(book.ask_levels()),
            book.sequence,
            book.ts_event,
            book.ts_recv,
        )
        return request_for(snapshot, self._instrument(venue, symbol))

    def _instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self.market.instrument(venue, symbol) or self._known.get((venue, symbol))

    async def _read(self, call: Any) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                raise SessionEnded("the component closed the session")
            self._last_heard = time.monotonic()
            self._handle(response)

    async def _watch(self) -> None:
        interval = self.spec.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(interval)
            silent = time.monotonic() - self._last_heard
            if silent > interval * _HEARTBEATS_MISSED:
                raise HeartbeatMissed(f"no heartbeat for {silent * 1000:.0f} ms")

    # -- kernel -> component -------------------------------------------------

    def _subscribe(self, subscription: components_pb2.Subscription) -> str:
        """Deliver the subscribed data; return an error message, or "" when taken."""
        if not subscription.instruments or not subscription.kinds:
            return "subscribe: at least one instrument and one kind are required"
        for instrument in subscription.instruments:
            venue, symbol = instrument.venue, instrument.symbol
            if self._instrument(venue, symbol) is None:
                return f"subscribe: unknown instrument {venue}.{symbol}"
        for instrument in subscription.instruments:
            venue, symbol = instrument.venue, instrument.symbol
            for kind in subscription.kinds:
                key = (venue, symbol, kind)
                if key in self._subscribed:
                    continue
                handlers = self._handlers(venue, symbol, kind)
                if handlers is None:
                    return f"subscribe: kind {kind} is not delivered to components"
                self._subscribed.add(key)
                for pattern, handler in handlers:
                    self.bus.subscribe(pattern, handler, priority=STRATEGY_PRIORITY)
                    self._subscriptions.append((pattern, handler))
                if kind == market_data_pb2.MARKET_DATA_KIND_BOOK:
                    self._resync.add((venue, symbol))
                    self._queue.append(("resync", (venue, symbol)))
                    self._wake.set()
        return ""

    def _unsubscribe(self, subscription: components_pb2.Subscription) -> None:
        for instrument in subscription.instruments:
            for kind in subscription.kinds:
                key = (instrument.venue, instrument.symbol, kind)
                if key not in self._subscribed:
                    continue
                self._subscribed.discard(key)
                patterns = {pattern for pattern, _ in self._handlers(*key) or ()}
                for pattern, handler in list(self._subscriptions):
                    if pattern in patterns:
                        self.bus.unsubscribe(pattern, handler)
                        self._subscriptions.remove((pattern, handler))

    def _unsubscribe_all(self) -> None:
        for pattern, handler in self._subscriptions:
            self.bus.unsubscribe(pattern, handler)
        self._subscriptions.clear()
        self._subscribed.clear()

    def _handlers(
        self, venue: str, symbol: str, kind: int
    ) -> list[tuple[str, Callable[[Any], None]]] | None:
        if kind == market_data_pb2.MARKET_DATA_KIND_BOOK:
            return [
                (topics.book(venue, symbol), self._on_book),
                (topics.snapshot(venue, symbol), self._on_book),
            ]
        if kind == market_data_pb2.MARKET_DATA_KIND_QUOTE:
            return [(topics.quote(venue, symbol), self._on_market)]
        if kind == market_data_pb2.MARKET_DATA_KIND_TRADE:
            return [(topics.trade(venue, symbol), self._on_market)]
        if kind == market_data_pb2.MARKET_DATA_KIND_BOOK_STATUS:
            return [(topics.book_status(venue, symbol), self._on_status)]
        return None

    def _on_book(self, event: Any) -> None:
        key = (event.venue, event.symbol)
        if key in self._resync:
            self.stats.dropped += 1  # the snapshot still queued will include it
        elif len(self._queue) >= self.spec.queue_size:
            self.stats.dropped += 1
            self._resync.add(key)
            self._queue.append(("resync", key))
        else:
            self._queue.append(("event", event))
        self._after_event()

    def _on_status(self, event: Any) -> None:
        # Never dropped: a component must hear that a book it trades on is invalid.
        self._queue.append(("event", event))
        self._after_event()

    def _on_market(self, event: Any) -> None:
        if len(self._queue) >= self.spec.queue_size:
            self.stats.dropped += 1
        else:
            self._queue.append(("event", event))
        self._after_event()

    def _on_own_order(self, event: Any) -> None:
        self._queue.append(("event", event))
        self._wake.set()

    def _after_event(self) -> None:
        timers = self.context.timers
        if timers:
            now = self.clock()
            for name, (interval, due) in list(timers.items()):
                if now >= due:
                    timers[name] = (interval, now + interval)
                    self._queue.append(
                        ("message", _request(timer=components_pb2.TimerFired(name=name, ts=now)))
                    )
        self._wake.set()

    def _reply(self, request_id: str, *, client_order_id: str = "", error: str = "") -> None:
        if error:
            self.stats.refused += 1
            log.warning("component %s: refused %s: %s", self.name, request_id or "a command", error)
        result = components_pb2.CommandResult(
            request_id=request_id, client_order_id=client_order_id, error=error
        )
        self._queue.append(("message", _request(command_result=result)))
        self._wake.set()

    # -- component -> kernel -------------------------------------------------

    def _handle(self, response: components_pb2.SessionResponse) -> None:
        kind = response.WhichOneof("message")
        if kind == "heartbeat":
            self.acked = max(self.acked, response.heartbeat.last_sequence)
            self._acked.set()
            return
        request_id = response.request_id
        if kind in ("signal", "detection", "prediction"):
            self.stats.outputs += 1
            self.bus.publish(f"component.{kind}.{self.name}", getattr(response, kind))
            return
        if kind == "log":
            self._log(response.log)
            return
        if kind is None:
            self._reply(request_id, error="empty message")
            return
        if not request_id:
            self._reply(request_id, error=f"{kind}: request_id is required")
            return
        try:
            if kind == "order_intent":
                self._intent(request_id, response.order_intent)
            elif kind == "subscribe":
                self._reply(request_id, error=self._subscribe(response.subscribe))
            elif kind == "unsubscribe":
                self._unsubscribe(response.unsubscribe.subscription)
                self._reply(request_id)
            elif kind in ("cancel", "cancel_all"):
                self._cancel(request_id, response)
            elif kind == "set_timer":
                self.context.set_timer(response.set_timer.name, response.set_timer.interval_ns)
                self._reply(request_id)
            elif kind == "cancel_timer":
                self.context.cancel_timer(response.cancel_timer.name)
                self._reply(request_id)
        except ValueError as error:
            self._reply(request_id, error=f"{kind}: {error}")

    def _intent(self, request_id: str, message: Any) -> None:
        if self.kind != "strategy":
            self._reply(request_id, error=f"a {self.kind} may not send orders")
            return
        client_order_id = f"{self.name}-{request_id}"
        # The order manager knows every id it was given (the journal, after a restart).
        if client_order_id in self.orders.orders:
            self._reply(request_id, client_order_id=client_order_id)  # resent: places nothing
            return
        venue = self.venues.market_venue(message.venue)
        try:
            intent = intent_from_message(message, self._instrument(venue, message.symbol))
        except IntentError as error:
            self._reply(request_id, error=str(error))
            return
        self.stats.intents += 1
        self.context.submit_as(intent, client_order_id)
        self._reply(request_id, client_order_id=client_order_id)

    def _cancel(self, request_id: str, response: components_pb2.SessionResponse) -> None:
        if self.kind != "strategy":
            self._reply(request_id, error=f"a {self.kind} may not cancel orders")
            return
        if response.HasField("cancel_all"):
            self.context.cancel_all(response.cancel_all.symbol or None)
            self._reply(request_id)
            return
        client_order_id = response.cancel.client_order_id
        order = self.orders.orders.get(client_order_id)
        if order is None or order.strategy != self.name:
            self._reply(
                request_id, error=f"cancel: {client_order_id!r} is not an order of {self.name}"
            )
            return
        self.orders.cancel(client_order_id)
        self._reply(request_id, client_order_id=client_order_id)

    def _log(self, record: components_pb2.LogRecord) -> None:
        level = _LOG_LEVELS.get(record.level, logging.INFO)
        if level >= logging.ERROR and "callback" in record.fields:
            self.stats.callback_errors += 1
        fields = " ".join(f"{key}={value}" for key, value in sorted(record.fields.items()))
        log.log(
            level, "component %s: %s%s", self.name, record.message, f" ({fields})" if fields else ""
        )

    def report(self) -> dict[str, Any]:
        """Return the component's state and counters."""
        return {
            "state": self.state.value,
            "kind": self.kind,
            "down_reason": self.down_reason,
            "address": self.address,
            "pid": self.process.pid if self.process is not None else None,
            **vars(self.stats),
        }


def _credentials(spec: ComponentSpec) -> grpc.ChannelCredentials | None:
    """Return TLS credentials for ``spec`` (mutual when it names the kernel's certificate)."""
    if spec.tls_ca is None:
        return None
    return channel_credentials(spec.tls_ca, spec.tls_cert, spec.tls_key)


def sdk_command(target: str) -> list[str]:
    """Return the command that serves ``package.module:Class`` with the Python SDK."""
    return [sys.executable, "-m", "tradekernel_sdk.remote", target]
