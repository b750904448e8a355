"""Run a strategy, detector or model in its own process, as a kernel component.

:func:`serve` implements ``tradekernel.v1.ComponentService`` around an
ordinary :class:`~tradekernel_sdk.strategy.Strategy` subclass, unchanged: the
kernel dials the component, opens one session and streams it the market data
it subscribed to and the events of its own orders; the component's
``context.submit`` and ``context.cancel`` travel back as intents and take the
same path as an in-process strategy's (risk engine, journal, venue)::

    from tradekernel_sdk.remote import serve
    from mypackage import Imbalance

    serve(Imbalance, address="127.0.0.1:7001")

or from a shell, which prints the address it bound (port 0 picks a free one)::

    python -m tradekernel_sdk.remote mypackage:Imbalance --listen 127.0.0.1:0

A strategy is built per session with the configuration the kernel sends (its
``[[components]]`` settings), or the ``config`` given to :func:`serve` when
the kernel sends none. Its books are rebuilt from the stream, its clock is the
kernel's (market time in a replay), and ``position`` is the net of its own
fills. ``submit`` returns the client order id at once:
``<component>-<request id>``, which the kernel confirms in a ``CommandResult``.

Detectors, models and signals have no base class yet. Pass any object (or a
class built without arguments) with a ``kind`` attribute (``"detector"``,
``"model"`` or ``"signal"``) and any of ``on_book``, ``on_quote``,
``on_trade``, ``on_bar``, ``on_book_status`` and ``on_timer``; whatever these
return (a :class:`SignalOut`, :class:`DetectionOut`, :class:`PredictionOut` or
an iterable of them) is sent to the kernel. Such an object receives the
context as its ``context`` attribute before ``on_start``; the kernel refuses
any order it tries to place.

A callback that raises is counted (:attr:`RemoteContext.callback_errors`) and
reported to the kernel as an ERROR log record; the session goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import decimal
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with the kernel, not with the SDK
    uvloop = None  # type: ignore[assignment]

from tradekernel_sdk.book import SortedBook
from tradekernel_sdk.orders import (
    CancelRejected,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from tradekernel_sdk.proto.tradekernel.v1 import (
    components_pb2,
    components_pb2_grpc,
    market_data_pb2,
    orders_pb2,
    types_pb2,
)
from tradekernel_sdk.strategy import (
    OrderIntent,
    Strategy,
    StrategyConfigError,
    load_strategy_config,
)
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    Quote,
    Trade,
)

__all__ = [
    "API_VERSION",
    "LISTEN_ENV",
    "READY_PREFIX",
    "ComponentServicer",
    "DetectionOut",
    "PredictionOut",
    "RemoteBook",
    "RemoteContext",
    "SignalOut",
    "main",
    "serve",
    "server_credentials",
    "start_server",
]

API_VERSION = "v1"
"""The ``ComponentService`` version this module speaks."""

LISTEN_ENV = "TRADEKERNEL_COMPONENT_LISTEN"
"""Address to listen on without ``--listen``; a kernel that spawns a component sets it."""

READY_PREFIX = "tradekernel component listening on "
"""The command line prints this, then ``host:port``, once it serves."""

log = logging.getLogger("tradekernel_sdk.remote")

_KINDS = {
    "strategy": components_pb2.COMPONENT_KIND_STRATEGY,
    "detector": components_pb2.COMPONENT_KIND_DETECTOR,
    "model": components_pb2.COMPONENT_KIND_MODEL,
    "signal": components_pb2.COMPONENT_KIND_SIGNAL,
}
_MARKET_KINDS = (
    market_data_pb2.MARKET_DATA_KIND_BOOK,
    market_data_pb2.MARKET_DATA_KIND_BOOK_STATUS,
    market_data_pb2.MARKET_DATA_KIND_QUOTE,
    market_data_pb2.MARKET_DATA_KIND_TRADE,
)


# ---------------------------------------------------------------------------
# What non-strategy components return


@dataclass(frozen=True)
class SignalOut:
    """A named value for the kernel; ``value`` is exact (a Decimal, int or decimal string)."""

    name: str
    value: decimal.Decimal | int | str
    venue: str = ""
    symbol: str = ""
    ts_event: int = 0


@dataclass(frozen=True)
class DetectionOut:
    """Something a detector found; ``score`` from 0 to 1."""

    kind: str
    venue: str
    symbol: str
    score: decimal.Decimal | int | str
    detail: str = ""
    ts_event: int = 0


@dataclass(frozen=True)
class PredictionOut:
    """A model's prediction of ``target`` ``horizon_ns`` ahead."""

    model: str
    target: str
    value: decimal.Decimal | int | str
    venue: str = ""
    symbol: str = ""
    model_version: str = ""
    horizon_ns: int = 0
    ts_event: int = 0


Output = SignalOut | DetectionOut | PredictionOut


# ---------------------------------------------------------------------------
# Conversions between the wire and the SDK's fixed-point types


def _wire_decimal(value: decimal.Decimal | int | str) -> types_pb2.Decimal:
    """Return an exact decimal as a wire ``Decimal`` (no float ever involved)."""
    number = decimal.Decimal(value) if not isinstance(value, decimal.Decimal) else value
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value!r}")
    units = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent > 0:
        return types_pb2.Decimal(units=units * 10**exponent, precision=0)
    return types_pb2.Decimal(units=units, precision=-exponent)


def _units(value: types_pb2.Decimal, precision: int) -> int:
    """Return a wire ``Decimal`` as an integer at ``precision``; ValueError when not exact."""
    units, given = int(value.units), int(value.precision)
    if given == precision:
        return units
    if given < precision:
        return units * int(10 ** (precision - given))
    whole, rest = divmod(units, int(10 ** (given - precision)))
    if rest:
        raise ValueError(f"{units}e-{given} is not exact at {precision} decimals")
    return int(whole)


def _instrument(message: types_pb2.Instrument) -> Instrument:
    return Instrument(
        venue=message.venue,
        symbol=message.symbol,
        price_precision=message.price_precision,
        size_precision=message.size_precision,
        tick=_units(message.tick, message.price_precision) if message.HasField("tick") else 1,
        lot=_units(message.lot, message.size_precision) if message.HasField("lot") else 1,
        base=message.base,
        quote=message.quote,
    )


def _levels(levels: Iterable[market_data_pb2.Level], price: int, size: int) -> tuple[Level, ...]:
    out = []
    for level in levels:
        level_price, level_size = level.price, level.size
        # The kernel sends the instrument's own precisions: no scaling on the usual path.
        out.append(
            (
                level_price.units if level_price.precision == price else _units(level_price, price),
                level_size.units if level_size.precision == size else _units(level_size, size),
            )
        )
    return tuple(out)


def _enum(wrapper: Any, prefix: str, number: int) -> str:
    """Return a wire enum value as the SDK's lower-case value (``ORDER_SIDE_BUY`` -> ``buy``)."""
    return str(wrapper.Name(number)).removeprefix(prefix).lower()


def _order_event(
    message: orders_pb2.OrderEvent, precisions: Callable[[str], tuple[int, int]]
) -> OrderEvent | None:
    kind = message.WhichOneof("event")
    if kind is None:
        return None
    body = getattr(message, kind)
    common = (body.client_order_id, body.venue_order_id, body.venue, body.symbol, body.ts_event)
    if kind == "filled":
        price, size = precisions(body.symbol)
        return OrderFilled(
            *common,
            fill_id=body.fill_id,
            price=_units(body.price, price),
            quantity=_units(body.quantity, size),
            leaves_quantity=_units(body.leaves_quantity, size),
            fee=int(body.fee.units),
            liquidity=Liquidity(_enum(orders_pb2.Liquidity, "LIQUIDITY_", body.liquidity)),
        )
    if kind == "accepted":
        return OrderAccepted(*common)
    if kind == "canceled":
        return OrderCanceled(*common)
    if kind == "rejected":
        return OrderRejected(*common, reason=body.reason)
    if kind == "expired":
        return OrderExpired(*common, reason=body.reason)
    return CancelRejected(*common, reason=body.reason)


def _order_update(message: orders_pb2.OrderUpdate) -> OrderUpdate:
    price_precision = message.price.precision if message.HasField("price") else 0
    notional_text = message.filled_notional.value or "0"
    notional = decimal.Decimal(notional_text).scaleb(price_precision + message.quantity.precision)
    return OrderUpdate(
        client_order_id=message.client_order_id,
        strategy=message.strategy,
        venue=message.venue,
        symbol=message.symbol,
        side=OrderSide(_enum(orders_pb2.OrderSide, "ORDER_SIDE_", message.side)),
        order_type=OrderType(_enum(orders_pb2.OrderType, "ORDER_TYPE_", message.order_type)),
        quantity=int(message.quantity.units),
        price=int(message.price.units) if message.HasField("price") else None,
        status=OrderStatus(_enum(orders_pb2.OrderStatus, "ORDER_STATUS_", message.status)),
        filled_quantity=_units(message.filled_quantity, message.quantity.precision),
        filled_notional=int(notional),
        fees=int(message.fees.units),
        reason=message.reason,
        ts_event=message.ts_event,
    )


def _intent_message(intent: OrderIntent, instrument: Instrument | None) -> orders_pb2.OrderIntent:
    price_precision = instrument.price_precision if instrument else 0
    size_precision = instrument.size_precision if instrument else 0
    message = orders_pb2.OrderIntent(
        symbol=intent.symbol,
        venue=intent.venue,
        side=orders_pb2.OrderSide.Value(f"ORDER_SIDE_{intent.side.name}"),
        order_type=orders_pb2.OrderType.Value(f"ORDER_TYPE_{intent.order_type.name}"),
        quantity=types_pb2.Decimal(units=intent.quantity, precision=size_precision),
        time_in_force=orders_pb2.TimeInForce.Value(f"TIME_IN_FORCE_{intent.time_in_force.name}"),
        tag=intent.tag,
    )
    if intent.price is not None:
        message.price.CopyFrom(types_pb2.Decimal(units=intent.price, precision=price_precision))
    return message


def _output_message(output: Output) -> components_pb2.SessionResponse:
    if isinstance(output, SignalOut):
        return components_pb2.SessionResponse(
            signal=components_pb2.Signal(
                name=output.name,
                venue=output.venue,
                symbol=output.symbol,
                value=_wire_decimal(output.value),
                ts_event=output.ts_event,
            )
        )
    if isinstance(output, DetectionOut):
        return components_pb2.SessionResponse(
            detection=components_pb2.Detection(
                kind=output.kind,
                venue=output.venue,
                symbol=output.symbol,
                score=_wire_decimal(output.score),
                detail=output.detail,
                ts_event=output.ts_event,
            )
        )
    if isinstance(output, PredictionOut):
        return components_pb2.SessionResponse(
            prediction=components_pb2.Prediction(
                model=output.model,
                model_version=output.model_version,
                venue=output.venue,
                symbol=output.symbol,
                target=output.target,
                value=_wire_decimal(output.value),
                horizon_ns=output.horizon_ns,
                ts_event=output.ts_event,
            )
        )
    raise TypeError(f"a component callback returned {type(output).__name__}, not an output")


# ---------------------------------------------------------------------------
# Books and the context


class RemoteBook(SortedBook):
    """A book rebuilt from the session's snapshots and deltas (a :class:`BookView`)."""

    def __init__(self) -> None:
        super().__init__()
        self.sequence = 0

    def reset(self, snapshot: BookSnapshot) -> None:
        """Replace the book with ``snapshot``."""
        self.clear()
        self.apply_levels(snapshot.bids, snapshot.asks)
        self.sequence = snapshot.sequence

    def apply(self, delta: BookDelta) -> bool:
        """Apply ``delta`` unless the book already includes it; return whether it was applied."""
        if self.sequence and delta.sequence <= self.sequence:
            return False
        self.apply_levels(delta.bids, delta.asks)
        self.sequence = delta.sequence
        return True


@dataclass
class _OwnOrder:
    venue: str
    symbol: str
    side: OrderSide
    filled: int = 0
    status: OrderStatus = OrderStatus.PENDING_NEW


class RemoteContext:
    """The component's side of :class:`~tradekernel_sdk.strategy.StrategyContext`.

    Commands are queued as ``SessionResponse`` messages and sent after the
    callback returns; ``submit`` returns the client order id the kernel will
    use, ``<component>-<request id>``.
    """

    def __init__(self, component: str, request_prefix: str) -> None:
        self.component = component
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.books: dict[tuple[str, str], RemoteBook] = {}
        self.orders: dict[str, _OwnOrder] = {}
        self.outbox: list[components_pb2.SessionResponse] = []
        self.now = 0
        self.callback_errors = 0
        """Exceptions raised by the component's callbacks in this session."""
        self.command_errors: list[tuple[str, str]] = []
        """``(request_id, error)`` of every command the kernel refused, oldest first."""
        self._prefix = request_prefix
        self._next = 1
        self._log = logging.getLogger(f"tradekernel.component.{component}")

    # -- StrategyContext -------------------------------------------------------

    @property
    def log(self) -> logging.Logger:
        """Return the component's logger."""
        return self._log

    def clock(self) -> int:
        """Return the kernel's time of the message being handled (market time in a replay)."""
        return self.now

    def book(self, venue: str, symbol: str) -> RemoteBook | None:
        """Return the book rebuilt from the stream, or None before its first snapshot."""
        return self.books.get((venue, symbol))

    def position(self, venue: str, symbol: str) -> int:
        """Return the net of this component's fills on ``symbol`` (orders routed from ``venue``)."""
        market_venues = {known_venue for known_venue, _ in self.instruments}
        total = 0
        for order in self.orders.values():
            if order.symbol != symbol:
                continue
            if order.venue != venue and order.venue in market_venues:
                continue  # another market venue's order; a routed venue is not in the list
            total += order.filled if order.side is OrderSide.BUY else -order.filled
        return total

    def submit(self, intent: OrderIntent) -> str:
        """Send an order intent; return the client order id the kernel gives it."""
        request_id = self._request_id()
        client_order_id = f"{self.component}-{request_id}"
        self.orders[client_order_id] = _OwnOrder(intent.venue, intent.symbol, intent.side)
        instrument = self.instruments.get((intent.venue, intent.symbol))
        self._send(request_id, order_intent=_intent_message(intent, instrument))
        return client_order_id

    def cancel(self, client_order_id: str) -> None:
        """Ask for one of this component's orders to be cancelled."""
        self._send(
            self._request_id(), cancel=components_pb2.CancelIntent(client_order_id=client_order_id)
        )

    def cancel_all(self, symbol: str | None = None) -> None:
        """Ask for every working order of this component (on ``symbol`` only) to be cancelled."""
        self._send(
            self._request_id(), cancel_all=components_pb2.CancelAllIntent(symbol=symbol or "")
        )

    def set_timer(self, name: str, interval_ns: int) -> None:
        """Ask the kernel to send ``TimerFired(name)`` every ``interval_ns`` of its clock."""
        if interval_ns <= 0:
            raise ValueError(f"timer interval must be positive, got {interval_ns}")
        self._send(
            self._request_id(),
            set_timer=components_pb2.SetTimer(name=name, interval_ns=interval_ns),
        )

    def cancel_timer(self, name: str) -> None:
        """Stop the timer ``name``."""
        self._send(self._request_id(), cancel_timer=components_pb2.CancelTimer(name=name))

    # -- beyond StrategyContext -------------------------------------------------

    def subscribe(self, venue: str, symbol: str, kinds: Iterable[int] = _MARKET_KINDS) -> None:
        """Ask for the market data ``kinds`` (``MARKET_DATA_KIND_*``) of one instrument."""
        subscription = components_pb2.Subscription(
            instruments=[types_pb2.InstrumentId(venue=venue, symbol=symbol)],
            kinds=[market_data_pb2.MarketDataKind.ValueType(kind) for kind in kinds],
        )
        self._send(self._request_id(), subscribe=subscription)

    def emit(self, output: Output) -> None:
        """Send a signal, detection or prediction."""
        self.outbox.append(_output_message(output))

    def report(self, level: int, message: str, **fields: str) -> None:
        """Write ``message`` to the kernel's log under the component's name."""
        record = components_pb2.LogRecord(
            level=components_pb2.LogLevel.ValueType(level), message=message, fields=fields
        )
        self.outbox.append(components_pb2.SessionResponse(log=record))

    def _request_id(self) -> str:
        request_id = f"{self._prefix}-{self._next}"
        self._next += 1
        return request_id

    def _send(self, request_id: str, **message: Any) -> None:
        self.outbox.append(components_pb2.SessionResponse(request_id=request_id, **message))

    def precisions(self, symbol: str) -> tuple[int, int]:
        """Return the price and size precisions of ``symbol`` on any venue (0, 0 if unknown)."""
        for (_, known), instrument in self.instruments.items():
            if known == symbol:
                return instrument.price_precision, instrument.size_precision
        return 0, 0


# ---------------------------------------------------------------------------
# The service


def _kind_of(target: Any) -> str:
    if (inspect.isclass(target) and issubclass(target, Strategy)) or isinstance(target, Strategy):
        return "strategy"
    kind = str(getattr(target, "kind", "detector"))
    if kind not in _KINDS or kind == "strategy":
        raise ValueError(
            f"{target!r}: kind must be detector, model or signal "
            f"(or subclass Strategy), got {kind!r}"
        )
    return kind


def _name_of(target: Any) -> str:
    cls = target if inspect.isclass(target) else type(target)
    return str(getattr(target, "name", "") or cls.__name__)


class ComponentServicer(components_pb2_grpc.ComponentServiceServicer):
    """``ComponentService`` around one strategy (class or instance) or one other component."""

    def __init__(
        self,
        target: Any,
        *,
        config: Mapping[str, Any] | Strategy.Config | None = None,
        name: str | None = None,
        version: str = "0",
        description: str = "",
    ) -> None:
        self.target = target
        self.kind = _kind_of(target)
        self.config = config
        self.name = name or _name_of(target)
        self.version = version
        self.description = description or (inspect.getdoc(target) or "").split("\n", 1)[0]
        self.sessions = 0
        self.callback_errors = 0
        """Exceptions raised by callbacks, over every session."""
        self.context: RemoteContext | None = None
        self.component: Any = None
        # Unique for this process's life, so request ids (and the client order
        # ids made from them) never repeat after the component restarts.
        self._prefix = _base36(time.time_ns() // 1_000_000)
        self._session_count = 0
        self._current: _Session | None = None

    async def Describe(
        self,
        request: components_pb2.DescribeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> components_pb2.DescribeResponse:
        """Say what the component is and the market data it wants from the start."""
        response = components_pb2.DescribeResponse(
            name=self.name,
            version=self.version,
            kind=_KINDS[self.kind],
            api_version=API_VERSION,
            description=self.description,
        )
        venue, symbol = self._instrument_from(self.config)
        if venue and symbol:
            response.subscriptions.add(
                instruments=[types_pb2.InstrumentId(venue=venue, symbol=symbol)],
                kinds=_MARKET_KINDS,
            )
        return response

    # Answers through context.write rather than by yielding, hence the override.
    async def Session(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[components_pb2.SessionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """Handle one session; a new session replaces one still open."""
        if self._current is not None:
            self._current.end()  # the kernel reconnected: the old stream is dead to it
        session = _Session(self)
        session.task = asyncio.current_task()
        self._current = session
        await session.serve(context)

    @staticmethod
    def _instrument_from(config: Any) -> tuple[str, str]:
        if config is None:
            return "", ""
        if isinstance(config, Mapping):
            return str(config.get("venue", "")), str(config.get("symbol", ""))
        return str(getattr(config, "venue", "")), str(getattr(config, "symbol", ""))

    def build(self, context: RemoteContext, config_json: str) -> Any:
        """Return the component for a new session, built from the kernel's configuration."""
        raw: Any = json.loads(config_json) if config_json else None
        if self.kind == "strategy":
            if isinstance(self.target, Strategy):
                self.target.context = context
                return self.target
            cls: type[Strategy] = self.target
            if raw is None and isinstance(self.config, Strategy.Config):
                config = self.config
            else:
                source = raw if raw is not None else dict(self.config or {})  # type: ignore[arg-type]
                config = load_strategy_config(cls, source, f"components.{context.component}")
            return cls(context, config)
        component: Any = self.target() if inspect.isclass(self.target) else self.target
        component.context = context
        if raw is not None:
            component.config = raw
        return component


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while number:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
    return text or "0"


class _Session:
    """One session: requests in, responses out; callbacks run between."""

    def __init__(self, servicer: ComponentServicer) -> None:
        self.servicer = servicer
        self.context: RemoteContext | None = None
        self.component: Any = None
        self.last_sequence = 0
        self.heartbeat_s = 1.0
        self.writing = asyncio.Lock()
        self.ended = False
        self.last_sent = time.monotonic()
        self.task: asyncio.Task[Any] | None = None

    def end(self) -> None:
        """Stop this session now (the kernel opened another one)."""
        self.ended = True
        if self.task is not None:
            self.task.cancel()

    async def serve(self, stream: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Read, handle and answer requests until the kernel or :meth:`end` closes the session."""
        beats = asyncio.create_task(self._beat(stream))
        try:
            while not self.ended:
                request = await stream.read()
                if request is grpc.aio.EOF:
                    break
                responses = self._handle(request)
                if self.context is not None:
                    # After the answers: the kernel knows this request is done (lockstep).
                    responses.append(self._heartbeat())
                async with self.writing:
                    for response in responses:
                        await stream.write(response)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            self._stop("session ended")

    async def _beat(self, stream: grpc.aio.ServicerContext[Any, Any]) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s / 2)
            if (
                self.context is not None
                and time.monotonic() - self.last_sent >= self.heartbeat_s / 2
            ):
                async with self.writing:
                    await stream.write(self._heartbeat())

    def _heartbeat(self) -> components_pb2.SessionResponse:
        self.last_sent = time.monotonic()
        return components_pb2.SessionResponse(
            heartbeat=components_pb2.Heartbeat(last_sequence=self.last_sequence)
        )

    def _handle(
        self, request: components_pb2.SessionRequest
    ) -> list[components_pb2.SessionResponse]:
        self.last_sequence = request.sequence
        kind = request.WhichOneof("message")
        if kind == "start":
            self._start(request.start)
        context = self.context
        if context is None:
            return []
        context.now = request.clock
        if kind != "start":
            self._deliver(kind, request)
        outbox, context.outbox = context.outbox, []
        if outbox:
            self.last_sent = time.monotonic()
        return outbox

    def _start(self, start: components_pb2.SessionStart) -> None:
        servicer = self.servicer
        context = RemoteContext(start.component or servicer.name, servicer._prefix)
        for message in start.instruments:
            instrument = _instrument(message)
            context.instruments[instrument.venue, instrument.symbol] = instrument
        self.heartbeat_s = max(start.heartbeat_interval_ms, 10) / 1000
        self.context = context
        servicer.context = context
        servicer.sessions += 1
        try:
            self.component = servicer.build(context, start.config_json)
        except (StrategyConfigError, ValueError, TypeError) as error:
            context.report(components_pb2.LOG_LEVEL_ERROR, f"cannot build the component: {error}")
            self.ended = True
            return
        servicer.component = self.component
        venue, symbol = servicer._instrument_from(getattr(self.component, "config", None))
        if venue and symbol:
            context.subscribe(venue, symbol)
        self._call("on_start")

    def _deliver(self, kind: str | None, request: components_pb2.SessionRequest) -> None:
        context = self.context
        assert context is not None
        if kind in {"book_delta", "book_snapshot"}:
            self._book(context, kind, request)
        elif kind == "quote":
            quote = request.quote
            price, size = self._precisions(quote.venue, quote.symbol)
            self._call(
                "on_quote",
                Quote(
                    quote.venue,
                    quote.symbol,
                    _units(quote.bid_price, price),
                    _units(quote.bid_size, size),
                    _units(quote.ask_price, price),
                    _units(quote.ask_size, size),
                    quote.sequence,
                    quote.ts_event,
                    quote.ts_recv,
                ),
            )
        elif kind == "trade":
            trade = request.trade
            price, size = self._precisions(trade.venue, trade.symbol)
            aggressor = _enum(market_data_pb2.AggressorSide, "AGGRESSOR_SIDE_", trade.aggressor)
            self._call(
                "on_trade",
                Trade(
                    trade.venue,
                    trade.symbol,
                    _units(trade.price, price),
                    _units(trade.size, size),
                    AggressorSide(aggressor)
                    if aggressor in ("buy", "sell")
                    else AggressorSide.UNKNOWN,
                    trade.trade_id,
                    trade.ts_event,
                    trade.ts_recv,
                ),
            )
        elif kind == "bar":
            bar = request.bar
            price, size = self._precisions(bar.venue, bar.symbol)
            self._call(
                "on_bar",
                Bar(
                    bar.venue,
                    bar.symbol,
                    bar.interval_ns,
                    _units(bar.open, price),
                    _units(bar.high, price),
                    _units(bar.low, price),
                    _units(bar.close, price),
                    _units(bar.volume, size),
                    bar.ts_open,
                ),
            )
        elif kind == "book_status":
            status = request.book_status
            state = _enum(market_data_pb2.BookState, "BOOK_STATE_", status.state)
            book_state = (
                BookState(state) if state in ("syncing", "valid", "invalid") else BookState.INVALID
            )
            if book_state is not BookState.VALID:
                context.books.pop((status.venue, status.symbol), None)
            self._call(
                "on_book_status",
                BookStatus(
                    status.venue,
                    status.symbol,
                    book_state,
                    status.reason,
                    status.sequence,
                    status.ts_recv,
                ),
            )
        elif kind == "order_update":
            update = _order_update(request.order_update)
            order = context.orders.get(update.client_order_id)
            if order is None:
                order = _OwnOrder(update.venue, update.symbol, update.side)
                context.orders[update.client_order_id] = order
            order.filled, order.status = update.filled_quantity, update.status
            self._call("on_order_update", update)
        elif kind == "order_event":
            event = _order_event(request.order_event, context.precisions)
            if event is not None:
                self._call("on_order_event", event)
                if isinstance(event, OrderFilled):
                    self._call("on_fill", event)
        elif kind == "command_result":
            result = request.command_result
            if result.error:
                context.command_errors.append((result.request_id, result.error))
                context.log.warning("the kernel refused %s: %s", result.request_id, result.error)
                self._call("on_command_error", result.request_id, result.error)
        elif kind == "timer":
            self._call("on_timer", request.timer.name, request.timer.ts)
        elif kind == "shutdown":
            self._stop(request.shutdown.reason)
            self.ended = True

    def _book(
        self, context: RemoteContext, kind: str, request: components_pb2.SessionRequest
    ) -> None:
        message = request.book_delta if kind == "book_delta" else request.book_snapshot
        key = (message.venue, message.symbol)
        price, size = self._precisions(*key)
        bids = _levels(message.bids, price, size)
        asks = _levels(message.asks, price, size)
        book = context.books.get(key)
        if kind == "book_snapshot":
            snapshot = BookSnapshot(
                message.venue,
                message.symbol,
                bids,
                asks,
                message.sequence,
                message.ts_event,
                message.ts_recv,
            )
            if book is None:
                book = context.books[key] = RemoteBook()
            book.reset(snapshot)
            self._call("on_book", snapshot, book)
            return
        delta = request.book_delta
        update = BookDelta(
            delta.venue,
            delta.symbol,
            bids,
            asks,
            delta.first_sequence,
            delta.sequence,
            delta.ts_event,
            delta.ts_recv,
        )
        if book is None or not book.apply(update):
            return  # before the first snapshot, or already in it
        self._call("on_book", update, book)

    def _precisions(self, venue: str, symbol: str) -> tuple[int, int]:
        assert self.context is not None
        instrument = self.context.instruments.get((venue, symbol))
        if instrument is None:
            return self.context.precisions(symbol)
        return instrument.price_precision, instrument.size_precision

    def _call(self, name: str, *args: Any) -> None:
        callback = getattr(self.component, name, None)
        context = self.context
        if callback is None or context is None:
            return
        try:
            result = callback(*args)
            if result is not None and self.servicer.kind != "strategy":
                for output in (result,) if isinstance(result, Output) else result:
                    context.emit(output)
        except Exception as error:
            context.callback_errors += 1
            self.servicer.callback_errors += 1
            log.exception("%s raised in %s", self.servicer.name, name)
            last = traceback.extract_tb(error.__traceback__)[-1]
            context.report(
                components_pb2.LOG_LEVEL_ERROR,
                f"{name} raised {error!r}",
                callback=name,
                where=f"{last.filename}:{last.lineno}",
                errors=str(context.callback_errors),
            )

    def _stop(self, reason: str) -> None:
        if self.component is None:
            return
        log.info("%s: session ends (%s)", self.servicer.name, reason)
        self._call("on_stop")
        self.component = None


# ---------------------------------------------------------------------------
# Serving


async def start_server(
    target: Any,
    *,
    address: str = "127.0.0.1:0",
    config: Mapping[str, Any] | Strategy.Config | None = None,
    name: str | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, ComponentServicer, str]:
    """Start serving ``target`` on ``address``; return the server, servicer and bound address."""
    servicer = ComponentServicer(target, config=config, name=name)
    server = grpc.aio.server()
    components_pb2_grpc.add_ComponentServiceServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    host = address.rsplit(":", 1)[0]
    await server.start()
    return server, servicer, f"{host}:{port}"


def server_credentials(
    cert_file: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    client_ca_file: str | os.PathLike[str] | None = None,
) -> grpc.ServerCredentials:
    """Return TLS credentials from PEM files; with ``client_ca_file`` the kernel must present a
    certificate that CA signed (mutual TLS)."""

    def read(path: str | os.PathLike[str], what: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise ValueError(f"{what}: cannot read {path}: {error.strerror}") from None
        if b"-----BEGIN" not in data:
            raise ValueError(f"{what}: {path} holds no PEM block")
        return data

    client_ca = None if client_ca_file is None else read(client_ca_file, "tls client CA")
    return grpc.ssl_server_credentials(
        [(read(key_file, "tls key"), read(cert_file, "tls certificate"))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def serve(
    target: Any,
    *,
    address: str = "127.0.0.1:0",
    config: Mapping[str, Any] | Strategy.Config | None = None,
    name: str | None = None,
    credentials: grpc.ServerCredentials | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``target`` as a component until SIGINT/SIGTERM; ``ready`` gets the bound address."""

    async def run() -> None:
        server, _, bound = await start_server(
            target, address=address, config=config, name=name, credentials=credentials
        )
        if ready is not None:
            ready(bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(number, stop.set)
        await stop.wait()
        await server.stop(grace=1.0)

    if uvloop is not None:
        uvloop.run(run())
    else:  # pragma: no cover - uvloop comes with the kernel; a bare SDK install may lack it
        asyncio.run(run())


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected package.module:ClassName, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"cannot import {module_name}: {error}") from None
    try:
        loaded = module
        for part in attribute.split("."):
            loaded = getattr(loaded, part)
    except AttributeError:
        raise SystemExit(f"{module_name} has no {attribute}") from None
    return loaded


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m tradekernel_sdk.remote package.module:ClassName``."""
    parser = argparse.ArgumentParser(
        prog="python -m tradekernel_sdk.remote",
        description="Serve a strategy, detector or model as an out-of-process kernel component.",
    )
    parser.add_argument("target", help="the component, as package.module:ClassName")
    parser.add_argument(
        "--listen",
        default=os.environ.get(LISTEN_ENV, "127.0.0.1:0"),
        help=f"address to listen on (default ${LISTEN_ENV} or 127.0.0.1:0: a free port)",
    )
    parser.add_argument("--name", help="the component's name (default: the class name)")
    parser.add_argument("--config", help="configuration as JSON, used when the kernel sends none")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="the key of --tls-cert (PEM)")
    parser.add_argument(
        "--tls-client-ca", help="require the kernel to present a certificate this CA signed"
    )
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    credentials = None
    if args.tls_cert:
        try:
            credentials = server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
        except ValueError as error:
            parser.error(str(error))
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    target = _load(args.target)
    config = json.loads(args.config) if args.config else None

    def announce(bound: str) -> None:
        print(f"{READY_PREFIX}{bound}", flush=True)

    serve(
        target,
        address=args.listen,
        config=config,
        name=args.name,
        credentials=credentials,
        ready=announce,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
