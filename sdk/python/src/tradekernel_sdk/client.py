"""Typed clients of the kernel's ``tradekernel.v1`` gRPC API.

:class:`KernelClient` is synchronous, :class:`AsyncKernelClient` runs on
``grpc.aio``; both are context managers, send the bearer token with every
call and answer with the SDK's own types: prices and sizes are fixed-point
integers at the instrument's precision, converted exactly from and to the
wire's ``Decimal``; money (``Amount``) is a :class:`decimal.Decimal`, exact
at any size. A failed call raises an :class:`ApiError` subclass, never a
gRPC exception::

    from tradekernel_sdk.client import KernelClient

    with KernelClient("127.0.0.1:50051", token="s3cr3t-read") as client:
        book = client.book_snapshot("binance", "BTCUSDT", depth=5)
"""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeVar

import grpc
import grpc.aio

from tradekernel_sdk.fixedpoint import decimal_places, from_fixed, to_fixed
from tradekernel_sdk.orders import (
    FEE_PRECISION,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from tradekernel_sdk.proto.tradekernel.v1 import (
    kernel_pb2,
    kernel_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    plugins_pb2,
    plugins_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
    risk_pb2,
    risk_pb2_grpc,
    types_pb2,
)
from tradekernel_sdk.types import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AlreadyExists",
    "ApiError",
    "AsyncKernelClient",
    "BookEvent",
    "BookInfo",
    "ComponentInfo",
    "ConversionError",
    "FailedPrecondition",
    "InvalidArgument",
    "KernelClient",
    "KernelStatus",
    "KernelVersion",
    "ModelComponentView",
    "ModelMetricsView",
    "ModelView",
    "NotFound",
    "OrderView",
    "PermissionDenied",
    "PluginView",
    "PositionView",
    "RiskState",
    "TlsFiles",
    "Unauthenticated",
    "Unavailable",
]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds a unary call may take before it fails with ``DEADLINE_EXCEEDED``."""

_T = TypeVar("_T")

BookEvent = BookSnapshot | BookDelta | BookStatus
"""What :meth:`KernelClient.stream_books` yields."""


# ---------------------------------------------------------------------------
# Errors


class ApiError(Exception):
    """A call failed: ``code`` is the gRPC status name (``"NOT_FOUND"``), ``message`` its detail."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class Unauthenticated(ApiError):
    """The token is missing, malformed or unknown."""


class PermissionDenied(ApiError):
    """The token lacks the scope the call needs."""


class NotFound(ApiError):
    """An unknown instrument or order."""


class InvalidArgument(ApiError):
    """A missing or invalid field; the message starts with the field's name."""


class FailedPrecondition(ApiError):
    """The kernel is not in a state to answer (a book that is not ``VALID``)."""


class AlreadyExists(ApiError):
    """A known ``client_order_id`` was submitted with different fields."""


class Unavailable(ApiError):
    """The server cannot be reached, or trading is not running."""


class ConversionError(ApiError):
    """A value does not convert exactly between the wire and the instrument's precision."""

    def __init__(self, message: str) -> None:
        super().__init__("CONVERSION", message)


_ERRORS: Final[dict[str, type[ApiError]]] = {
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "NOT_FOUND": NotFound,
    "INVALID_ARGUMENT": InvalidArgument,
    "FAILED_PRECONDITION": FailedPrecondition,
    "ALREADY_EXISTS": AlreadyExists,
    "UNAVAILABLE": Unavailable,
}


def _api_error(error: grpc.RpcError) -> ApiError:
    """Return the :class:`ApiError` of a failed gRPC call."""
    code: grpc.StatusCode | None = None
    details: str | None = None
    if isinstance(error, (grpc.aio.AioRpcError, grpc.Call)):
        code, details = error.code(), error.details()
    name = code.name if code is not None else "UNKNOWN"
    return _ERRORS.get(name, ApiError)(name, details or "")


# ---------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class KernelVersion:
    """Versions of the kernel and its APIs."""

    kernel_version: str
    api_version: str
    plugin_api_version: str
    sdk_version: str


@dataclass(frozen=True)
class ComponentInfo:
    """One component of the running kernel; ``state`` is ``"running"``, ``"failed"``, ..."""

    name: str
    state: str
    detail: str


@dataclass(frozen=True)
class BookInfo:
    """One live book of the running kernel."""

    venue: str
    symbol: str
    state: BookState | None
    sequence: int
    ts_recv: int
    bid_levels: int
    ask_levels: int


@dataclass(frozen=True)
class KernelStatus:
    """Uptime, components, books and the trading state (``"active"``, ``"halted"``, ...)."""

    ts_started: int
    uptime_ns: int
    components: tuple[ComponentInfo, ...]
    books: tuple[BookInfo, ...]
    trading_state: str


@dataclass(frozen=True)
class RiskState:
    """The risk engine's trading state and counters; money in quote currency."""

    state: str
    reason: str
    approvals: int
    denials: dict[str, int]
    check_errors: dict[str, int]
    cancels: int
    errors: int
    custom_checks: tuple[str, ...]
    realised_pnl_today: decimal.Decimal | None
    equity: decimal.Decimal | None
    equity_peak: decimal.Decimal | None


@dataclass(frozen=True)
class PluginView:
    """A plug-in the kernel found; ``status`` is ``"enabled"``, ``"disabled"`` or ``"refused"``."""

    name: str
    module: str
    source: str
    status: str
    reason: str
    distribution: str | None
    version: str | None
    registers: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class ModelMetricsView:
    """What a served version did since the kernel loaded it."""

    predictions: int
    compared: int
    """Shadow answers, and canary answers on routed instruments, compared with production's."""
    agreed: int
    errors: int
    latency_p50_ns: int
    latency_p99_ns: int
    published: int = 0
    """Answers acted on: published as the model's prediction (never in shadow)."""

    @property
    def agreement(self) -> float | None:
        """Return the share of compared answers equal to production's, or None before any."""
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True)
class ModelComponentView:
    """The out-of-process component answering for a version."""

    name: str
    up: bool
    down_reason: str
    stand_in: str
    """While it is down and should answer: the version answering in its place ("" if none)."""


@dataclass(frozen=True)
class ModelView:
    """A model version in the kernel's model repository; ``stage`` such as ``"production"``."""

    name: str
    version: str
    uri: str
    sha256: str
    stage: str
    canary_bps: int
    ts_loaded: int
    ts_stage: int
    canary_instruments: tuple[str, ...] = ()
    """In canary: the instruments (``venue.symbol``) it answers for, beside its share."""
    metrics: ModelMetricsView | None = None
    """For a served version; None for one only on disk."""
    component: ModelComponentView | None = None
    """For a version answered out of process (``uri`` ``component:NAME``)."""


@dataclass(frozen=True)
class OrderView:
    """An order as the kernel's order manager sees it, with the precisions of its integers.

    ``order`` holds fixed-point integers: prices at ``price_precision``, sizes
    at ``size_precision``, ``filled_notional`` at their sum and ``fees`` at
    :data:`~tradekernel_sdk.orders.FEE_PRECISION`. ``denial_reason`` names the
    risk check that denied it (``"trading_halted"``); ``replayed`` is true when
    a known ``client_order_id`` was submitted again and nothing was placed.
    """

    order: OrderUpdate
    price_precision: int
    size_precision: int
    denial_reason: str | None = None
    replayed: bool = False

    @property
    def quantity_text(self) -> str:
        """Return the quantity as a decimal string."""
        return from_fixed(self.order.quantity, self.size_precision)

    @property
    def filled_text(self) -> str:
        """Return the filled quantity as a decimal string."""
        return from_fixed(self.order.filled_quantity, self.size_precision)

    @property
    def price_text(self) -> str:
        """Return the limit price as a decimal string; empty for a market order."""
        price = self.order.price
        return "" if price is None else from_fixed(price, self.price_precision)


@dataclass(frozen=True)
class PositionView:
    """One position: quantity, traded and mark price fixed-point, money exact decimals."""

    venue: str
    symbol: str
    quantity: int
    size_precision: int
    cost: decimal.Decimal
    realised_pnl: decimal.Decimal
    unrealised_pnl: decimal.Decimal | None
    fees: int
    traded: int
    mark_price: int | None
    price_precision: int = field(default=0)

    @property
    def quantity_text(self) -> str:
        """Return the quantity as a decimal string."""
        return from_fixed(self.quantity, self.size_precision)

    @property
    def mark_text(self) -> str:
        """Return the mark price as a decimal string; empty when there is none."""
        mark = self.mark_price
        return "" if mark is None else from_fixed(mark, self.price_precision)


# ---------------------------------------------------------------------------
# Conversions


def _units(value: types_pb2.Decimal, precision: int, what: str = "value") -> int:
    """Return ``value`` as an integer at ``precision``; :class:`ConversionError` when not exact."""
    units = int(value.units)
    if value.precision <= precision:
        return units * int(10 ** (precision - value.precision))
    whole, rest = divmod(units, int(10 ** (value.precision - precision)))
    if rest:
        raise ConversionError(
            f"{what}: {value.units}e-{value.precision} is not exact at {precision}"
        )
    return whole


def _decimal(units: int, precision: int) -> types_pb2.Decimal:
    """Return ``units`` at ``precision`` as a wire ``Decimal``."""
    if not -(1 << 63) <= units < (1 << 63):
        raise ConversionError(f"{from_fixed(units, precision)} does not fit a 64-bit Decimal")
    return types_pb2.Decimal(units=units, precision=precision)


def _amount(value: types_pb2.Amount) -> decimal.Decimal:
    """Return an ``Amount`` as an exact decimal."""
    try:
        return decimal.Decimal(value.value)
    except decimal.InvalidOperation:
        raise ConversionError(f"not a decimal amount: {value.value!r}") from None


def _optional_amount(message: Any, name: str) -> decimal.Decimal | None:
    """Return the ``Amount`` field ``name`` of ``message``, or None when unset."""
    return _amount(getattr(message, name)) if message.HasField(name) else None


def _enum_name(wrapper: Any, prefix: str, number: int) -> str:
    """Return a proto enum value as a lower-case name without its prefix (``"active"``)."""
    try:
        name = str(wrapper.Name(number))
    except ValueError:
        return f"unknown({number})"
    return name.removeprefix(f"{prefix}_").lower()


def _plugin(message: plugins_pb2.PluginInfo) -> PluginView:
    return PluginView(
        name=message.name,
        module=message.module,
        source=message.source,
        status=_enum_name(plugins_pb2.PluginStatus, "PLUGIN_STATUS", message.status),
        reason=message.reason,
        distribution=message.distribution if message.HasField("distribution") else None,
        version=message.version if message.HasField("version") else None,
        registers={item.kind: tuple(item.names) for item in message.registers},
    )


def _model(message: models_pb2.ModelInfo) -> ModelView:
    return ModelView(
        name=message.name,
        version=message.version,
        uri=message.uri,
        sha256=message.sha256,
        stage=_enum_name(models_pb2.ModelStage, "MODEL_STAGE", message.stage),
        canary_bps=message.canary_bps,
        ts_loaded=message.ts_loaded,
        ts_stage=message.ts_stage,
        canary_instruments=tuple(message.canary_instruments),
        metrics=(
            ModelMetricsView(
                predictions=message.metrics.predictions,
                compared=message.metrics.compared,
                agreed=message.metrics.agreed,
                errors=message.metrics.errors,
                latency_p50_ns=message.metrics.latency_p50_ns,
                latency_p99_ns=message.metrics.latency_p99_ns,
                published=message.metrics.published,
            )
            if message.HasField("metrics")
            else None
        ),
        component=(
            ModelComponentView(
                name=message.component.name,
                up=message.component.up,
                down_reason=message.component.down_reason,
                stand_in=message.component.stand_in,
            )
            if message.HasField("component")
            else None
        ),
    )


def _book_state(number: int) -> BookState | None:
    """Return a proto ``BookState`` as the SDK's, or None when unset."""
    name = _enum_name(market_data_pb2.BookState, "BOOK_STATE", number)
    try:
        return BookState(name)
    except ValueError:
        return None


def _instrument(message: types_pb2.Instrument) -> Instrument:
    """Return a wire instrument as the SDK's."""
    return Instrument(
        venue=message.venue,
        symbol=message.symbol,
        price_precision=message.price_precision,
        size_precision=message.size_precision,
        tick=_units(message.tick, message.price_precision, "tick"),
        lot=_units(message.lot, message.size_precision, "lot"),
        base=message.base,
        quote=message.quote,
    )


def _levels(levels: Iterable[market_data_pb2.Level], instrument: Instrument) -> tuple[Level, ...]:
    """Return wire levels as ``(price, size)`` integers at the instrument's precisions."""
    return tuple(
        (
            _units(level.price, instrument.price_precision, "price"),
            _units(level.size, instrument.size_precision, "size"),
        )
        for level in levels
    )


def _snapshot(message: market_data_pb2.BookSnapshot, instrument: Instrument) -> BookSnapshot:
    """Return a wire book snapshot as the SDK's."""
    return BookSnapshot(
        venue=message.venue,
        symbol=message.symbol,
        bids=_levels(message.bids, instrument),
        asks=_levels(message.asks, instrument),
        sequence=message.sequence,
        ts_event=message.ts_event,
        ts_recv=message.ts_recv,
    )


def _book_event(
    message: market_data_pb2.StreamBooksResponse, instruments: dict[tuple[str, str], Instrument]
) -> BookEvent | None:
    """Return one streamed book event as the SDK's, or None for an event this SDK does not know."""
    kind = message.WhichOneof("event")
    if kind == "snapshot":
        snap = message.snapshot
        return _snapshot(snap, instruments[snap.venue, snap.symbol])
    if kind == "delta":
        delta = message.delta
        instrument = instruments[delta.venue, delta.symbol]
        return BookDelta(
            venue=delta.venue,
            symbol=delta.symbol,
            bids=_levels(delta.bids, instrument),
            asks=_levels(delta.asks, instrument),
            first_sequence=delta.first_sequence,
            sequence=delta.sequence,
            ts_event=delta.ts_event,
            ts_recv=delta.ts_recv,
        )
    if kind == "status":
        status = message.status
        return BookStatus(
            venue=status.venue,
            symbol=status.symbol,
            state=_book_state(status.state) or BookState.INVALID,
            reason=status.reason,
            sequence=status.sequence,
            ts_recv=status.ts_recv,
        )
    return None


def _order_view(
    message: orders_pb2.OrderUpdate,
    instrument: Instrument | None,
    denial: int = 0,
    replayed: bool = False,
) -> OrderView:
    """Return a wire order update as the SDK's, at the instrument's precisions when known."""
    if instrument is not None:
        price_precision, size_precision = instrument.price_precision, instrument.size_precision
    else:  # the server sends the instrument's precisions; take them from the wire
        price_precision, size_precision = message.price.precision, message.quantity.precision
    notional_precision = (
        price_precision + size_precision
        if instrument is not None
        else decimal_places(message.filled_notional.value)
    )
    denial_name = _enum_name(risk_pb2.DenialReason, "DENIAL_REASON", denial) if denial else None
    update = OrderUpdate(
        client_order_id=message.client_order_id,
        strategy=message.strategy,
        venue=message.venue,
        symbol=message.symbol,
        side=OrderSide[_enum_name(orders_pb2.OrderSide, "ORDER_SIDE", message.side).upper()],
        order_type=OrderType[
            _enum_name(orders_pb2.OrderType, "ORDER_TYPE", message.order_type).upper()
        ],
        quantity=_units(message.quantity, size_precision, "quantity"),
        price=(
            _units(message.price, price_precision, "price") if message.HasField("price") else None
        ),
        status=OrderStatus(_enum_name(orders_pb2.OrderStatus, "ORDER_STATUS", message.status)),
        filled_quantity=_units(message.filled_quantity, size_precision, "filled_quantity"),
        filled_notional=to_fixed(message.filled_notional.value or "0", notional_precision),
        fees=_units(message.fees, FEE_PRECISION, "fees"),
        reason=message.reason,
        ts_event=message.ts_event,
    )
    return OrderView(update, price_precision, size_precision, denial_name, replayed)


def _position(message: portfolio_pb2.Position) -> PositionView:
    """Return a wire position as the client's view."""
    return PositionView(
        venue=message.venue,
        symbol=message.symbol,
        quantity=int(message.quantity.units),
        size_precision=message.quantity.precision,
        cost=_amount(message.cost),
        realised_pnl=_amount(message.realised_pnl),
        unrealised_pnl=_optional_amount(message, "unrealised_pnl"),
        fees=_units(message.fees, FEE_PRECISION, "fees"),
        traded=_units(message.traded, message.quantity.precision, "traded"),
        mark_price=int(message.mark_price.units) if message.HasField("mark_price") else None,
        price_precision=message.mark_price.precision,
    )


def _version(message: kernel_pb2.GetVersionResponse) -> KernelVersion:
    return KernelVersion(
        message.kernel_version, message.api_version, message.plugin_api_version, message.sdk_version
    )


def _status(message: kernel_pb2.GetStatusResponse) -> KernelStatus:
    return KernelStatus(
        ts_started=message.ts_started,
        uptime_ns=message.uptime_ns,
        components=tuple(
            ComponentInfo(
                c.name, _enum_name(kernel_pb2.ComponentState, "COMPONENT_STATE", c.state), c.detail
            )
            for c in message.components
        ),
        books=tuple(
            BookInfo(
                venue=b.instrument.venue,
                symbol=b.instrument.symbol,
                state=_book_state(b.state),
                sequence=b.sequence,
                ts_recv=b.ts_recv,
                bid_levels=b.bid_levels,
                ask_levels=b.ask_levels,
            )
            for b in message.books
        ),
        trading_state=_enum_name(risk_pb2.TradingState, "TRADING_STATE", message.trading_state),
    )


def _risk_state(message: risk_pb2.RiskState) -> RiskState:
    return RiskState(
        state=_enum_name(risk_pb2.TradingState, "TRADING_STATE", message.state),
        reason=message.reason,
        approvals=message.approvals,
        denials={
            _enum_name(risk_pb2.DenialReason, "DENIAL_REASON", d.reason): d.count
            for d in message.denials
        },
        check_errors={e.check: e.count for e in message.check_errors},
        cancels=message.cancels,
        errors=message.errors,
        custom_checks=tuple(message.custom_checks),
        realised_pnl_today=_optional_amount(message, "realised_pnl_today"),
        equity=_optional_amount(message, "equity"),
        equity_peak=_optional_amount(message, "equity_peak"),
    )


def _order_request(order: OrderRequest, instrument: Instrument) -> orders_pb2.SubmitOrderRequest:
    """Return an SDK order request on the wire, at the instrument's precisions."""
    message = orders_pb2.OrderRequest(
        client_order_id=order.client_order_id,
        venue=order.venue,
        symbol=order.symbol,
        side=orders_pb2.OrderSide.Value(f"ORDER_SIDE_{order.side.name}"),
        order_type=orders_pb2.OrderType.Value(f"ORDER_TYPE_{order.order_type.name}"),
        quantity=_decimal(order.quantity, instrument.size_precision),
        time_in_force=orders_pb2.TimeInForce.Value(f"TIME_IN_FORCE_{order.time_in_force.name}"),
        ts_submit=order.ts_submit,
    )
    if order.price is not None:
        message.price.CopyFrom(_decimal(order.price, instrument.price_precision))
    return orders_pb2.SubmitOrderRequest(order=message)


def _resume_request(reason: str, state: str) -> risk_pb2.ResumeRequest:
    try:
        number = risk_pb2.TradingState.Value(f"TRADING_STATE_{state.upper()}")
    except ValueError:
        raise InvalidArgument(
            "INVALID_ARGUMENT", f"state: unknown trading state {state!r}"
        ) from None
    return risk_pb2.ResumeRequest(reason=reason, state=number)


def _stream_request(
    instruments: Iterable[tuple[str, str]], depth: int, throttle_ms: int
) -> market_data_pb2.StreamBooksRequest:
    return market_data_pb2.StreamBooksRequest(
        instruments=[types_pb2.InstrumentId(venue=v, symbol=s) for v, s in instruments],
        depth=depth,
        throttle_ms=throttle_ms,
    )


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS channel: the CA to trust, and for mutual TLS the client's own pair.

    ``ca_file`` None trusts the system's roots; ``cert_file`` and ``key_file``
    come together or not at all.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Read the files and return channel credentials; ValueError names a file at fault."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file: give both for a client certificate")

        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                with open(path, "rb") as handle:
                    return handle.read()
            except OSError as error:
                raise ValueError(f"{what}: cannot read {path}: {error.strerror or error}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file, "ca_file"),
            private_key=read(self.key_file, "key_file"),
            certificate_chain=read(self.cert_file, "cert_file"),
        )


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


class _Instruments:
    """The instruments the server knows, fetched once per venue."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], Instrument] = {}
        self.venues: set[str] = set()

    def add(self, venue: str, response: market_data_pb2.ListInstrumentsResponse) -> None:
        self.venues.add(venue)
        for message in response.instruments:
            self.known[message.venue, message.symbol] = _instrument(message)

    def found(self, venue: str, symbol: str) -> Instrument:
        instrument = self.known.get((venue, symbol))
        if instrument is None:
            raise NotFound("NOT_FOUND", f"instrument: no instrument {venue}.{symbol}")
        return instrument


# ---------------------------------------------------------------------------
# Clients


class KernelClient:
    """A synchronous client of the kernel's API; plaintext (loopback) unless given ``tls``."""

    def __init__(
        self,
        address: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TlsFiles | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._metadata = _metadata(token)
        if tls is None:
            self._channel = grpc.insecure_channel(address)
        else:
            self._channel = grpc.secure_channel(address, tls.credentials())
        self._kernel = kernel_pb2_grpc.KernelServiceStub(self._channel)
        self._risk = risk_pb2_grpc.RiskServiceStub(self._channel)
        self._orders = orders_pb2_grpc.OrderServiceStub(self._channel)
        self._market = market_data_pb2_grpc.MarketDataServiceStub(self._channel)
        self._portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self._channel)
        self._plugins = plugins_pb2_grpc.PluginServiceStub(self._channel)
        self._models = models_pb2_grpc.ModelServiceStub(self._channel)
        self._instruments = _Instruments()

    def __enter__(self) -> KernelClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Any, _T], request: Any) -> _T:
        try:
            return method(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _api_error(error) from None

    def instruments(self, venue: str = "") -> list[Instrument]:
        """Return the instruments the kernel has books for (of ``venue`` when given)."""
        response = self._call(
            self._market.ListInstruments, market_data_pb2.ListInstrumentsRequest(venue=venue)
        )
        self._instruments.add(venue, response)
        found = (_instrument(message) for message in response.instruments)
        return [item for item in found if not venue or item.venue == venue]

    def instrument(self, venue: str, symbol: str) -> Instrument:
        """Return one instrument with its precisions; :class:`NotFound` when unknown."""
        if (venue, symbol) not in self._instruments.known and venue not in self._instruments.venues:
            self.instruments(venue)
        return self._instruments.found(venue, symbol)

    def version(self) -> KernelVersion:
        """Return the versions of the kernel and its APIs."""
        return _version(self._call(self._kernel.GetVersion, kernel_pb2.GetVersionRequest()))

    def status(self) -> KernelStatus:
        """Return uptime, components, books and the trading state."""
        return _status(self._call(self._kernel.GetStatus, kernel_pb2.GetStatusRequest()))

    def risk_state(self) -> RiskState:
        """Return the risk engine's trading state and counters."""
        response = self._call(self._risk.GetRiskState, risk_pb2.GetRiskStateRequest())
        return _risk_state(response.state)

    def halt(self, reason: str) -> RiskState:
        """Halt trading and cancel every working order (scope ``trade``)."""
        response = self._call(self._risk.Halt, risk_pb2.HaltRequest(reason=reason))
        return _risk_state(response.state)

    def resume(self, reason: str, state: str = "active") -> RiskState:
        """Resume trading, ``"active"`` or ``"reducing"`` (scope ``admin``)."""
        response = self._call(self._risk.Resume, _resume_request(reason, state))
        return _risk_state(response.state)

    def submit_order(self, order: OrderRequest) -> OrderView:
        """Submit an order through the risk checks; a denial is an answer, not an error."""
        instrument = self.instrument(order.venue, order.symbol)
        response = self._call(self._orders.SubmitOrder, _order_request(order, instrument))
        return _order_view(response.order, instrument, response.denial_reason, response.replayed)

    def cancel_order(self, client_order_id: str) -> OrderView:
        """Ask for an order's working remainder to be cancelled; :class:`NotFound` when unknown."""
        response = self._call(
            self._orders.CancelOrder, orders_pb2.CancelOrderRequest(client_order_id=client_order_id)
        )
        return self._view(response.order)

    def cancel_all(self, venue: str = "", symbol: str = "") -> list[str]:
        """Cancel every working order (of ``venue``/``symbol``); return their client order ids."""
        request = orders_pb2.CancelAllOrdersRequest(
            filter=orders_pb2.OrderFilter(venue=venue, symbol=symbol)
        )
        return list(self._call(self._orders.CancelAllOrders, request).client_order_ids)

    def list_orders(self, *, open_only: bool = False, limit: int | None = None) -> list[OrderView]:
        """Return orders, newest first, following pages up to ``limit`` orders."""
        views: list[OrderView] = []
        token = ""
        while limit is None or len(views) < limit:
            request = orders_pb2.ListOrdersRequest(open_only=open_only, page_token=token)
            response = self._call(self._orders.ListOrders, request)
            views.extend(self._view(message) for message in response.orders)
            token = response.next_page_token
            if not token:
                break
        return views if limit is None else views[:limit]

    def _view(self, message: orders_pb2.OrderUpdate) -> OrderView:
        return _order_view(message, self._instruments.known.get((message.venue, message.symbol)))

    def positions(self, *, include_flat: bool = False) -> list[PositionView]:
        """Return the positions, with cost and P&L."""
        request = portfolio_pb2.GetPositionsRequest(include_flat=include_flat)
        return [_position(p) for p in self._call(self._portfolio.GetPositions, request).positions]

    def plugins(self) -> list[PluginView]:
        """Return every plug-in the kernel found, defaults first, then by name."""
        response = self._call(self._plugins.ListPlugins, plugins_pb2.ListPluginsRequest())
        return [_plugin(p) for p in response.plugins]

    def enable_plugin(self, name: str) -> PluginView:
        """Switch a plug-in the kernel loaded back on (scope ``admin``)."""
        request = plugins_pb2.EnablePluginRequest(name=name)
        return _plugin(self._call(self._plugins.EnablePlugin, request).plugin)

    def disable_plugin(self, name: str) -> PluginView:
        """Switch a loaded plug-in off: its strategies stop, their orders are cancelled."""
        request = plugins_pb2.DisablePluginRequest(name=name)
        return _plugin(self._call(self._plugins.DisablePlugin, request).plugin)

    def models(self, name: str = "") -> list[ModelView]:
        """Return the model versions (only ``name``'s when given), by name, then load time."""
        response = self._call(self._models.ListModels, models_pb2.ListModelsRequest(name=name))
        return [_model(m) for m in response.models]

    def load_model(self, name: str, version: str, uri: str = "", sha256: str = "") -> ModelView:
        """Load and validate a version (from the repository, or ``uri`` with its ``sha256``).

        ``uri = "component:NAME"`` (no ``sha256``) loads a version answered by
        the kernel's model component NAME.
        """
        request = models_pb2.LoadModelRequest(name=name, version=version, uri=uri, sha256=sha256)
        return _model(self._call(self._models.LoadModel, request).model)

    def promote_model(self, name: str, version: str) -> ModelView:
        """Make a loaded version production; the one before is retired (scope ``admin``)."""
        request = models_pb2.PromoteModelRequest(name=name, version=version)
        return _model(self._call(self._models.PromoteModel, request).model)

    def shadow_model(self, name: str, version: str) -> ModelView:
        """Run a loaded version in shadow beside production (scope ``admin``)."""
        request = models_pb2.ShadowModelRequest(name=name, version=version)
        return _model(self._call(self._models.ShadowModel, request).model)

    def canary_model(
        self, name: str, version: str, canary_bps: int = 0, instruments: Sequence[str] = ()
    ) -> ModelView:
        """Route ``instruments`` (``venue.symbol``) and a share of the rest to a version."""
        request = models_pb2.CanaryModelRequest(
            name=name, version=version, canary_bps=canary_bps, instruments=list(instruments)
        )
        return _model(self._call(self._models.CanaryModel, request).model)

    def rollback_model(self, name: str, from_version: str) -> ModelView:
        """Leave production ``from_version`` for the production version before it."""
        request = models_pb2.RollbackModelRequest(name=name, from_version=from_version)
        return _model(self._call(self._models.RollbackModel, request).model)

    def book_snapshot(self, venue: str, symbol: str, depth: int = 0) -> BookSnapshot:
        """Return one book now (``depth`` levels a side, 0: all) at the instrument's precisions."""
        instrument = self.instrument(venue, symbol)
        request = market_data_pb2.GetBookSnapshotRequest(
            instrument=types_pb2.InstrumentId(venue=venue, symbol=symbol), depth=depth
        )
        return _snapshot(self._call(self._market.GetBookSnapshot, request).snapshot, instrument)

    def stream_books(
        self,
        instruments: Iterable[tuple[str, str]],
        *,
        depth: int = 0,
        throttle_ms: int = 0,
        timeout: float | None = None,
    ) -> Iterator[BookEvent]:
        """Yield a snapshot per ``(venue, symbol)``, then deltas and status changes.

        The stream ends when the caller stops iterating (the call is cancelled),
        when the server ends it, or after ``timeout`` seconds.
        """
        wanted = list(instruments)
        known = {(v, s): self.instrument(v, s) for v, s in wanted}
        call = self._market.StreamBooks(
            _stream_request(wanted, depth, throttle_ms), metadata=self._metadata, timeout=timeout
        )
        try:
            for message in call:
                event = _book_event(message, known)
                if event is not None:
                    yield event
        except grpc.RpcError as error:
            raise _api_error(error) from None
        finally:
            call.cancel()


class AsyncKernelClient:
    """An asyncio client of the kernel's API; create and use it inside the running loop.

    Plaintext (loopback) unless given ``tls``.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TlsFiles | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._metadata = _metadata(token)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address)
        else:
            self._channel = grpc.aio.secure_channel(address, tls.credentials())
        self._kernel = kernel_pb2_grpc.KernelServiceStub(self._channel)
        self._risk = risk_pb2_grpc.RiskServiceStub(self._channel)
        self._orders = orders_pb2_grpc.OrderServiceStub(self._channel)
        self._market = market_data_pb2_grpc.MarketDataServiceStub(self._channel)
        self._portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self._channel)
        self._plugins = plugins_pb2_grpc.PluginServiceStub(self._channel)
        self._models = models_pb2_grpc.ModelServiceStub(self._channel)
        self._instruments = _Instruments()

    async def __aenter__(self) -> AsyncKernelClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _call(self, method: grpc.aio.UnaryUnaryMultiCallable[Any, _T], request: Any) -> _T:
        try:
            return await method(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _api_error(error) from None

    async def instruments(self, venue: str = "") -> list[Instrument]:
        """Return the instruments the kernel has books for (of ``venue`` when given)."""
        response = await self._call(
            self._market.ListInstruments, market_data_pb2.ListInstrumentsRequest(venue=venue)
        )
        self._instruments.add(venue, response)
        found = (_instrument(message) for message in response.instruments)
        return [item for item in found if not venue or item.venue == venue]

    async def instrument(self, venue: str, symbol: str) -> Instrument:
        """Return one instrument with its precisions; :class:`NotFound` when unknown."""
        if (venue, symbol) not in self._instruments.known and venue not in self._instruments.venues:
            await self.instruments(venue)
        return self._instruments.found(venue, symbol)

    async def version(self) -> KernelVersion:
        """Return the versions of the kernel and its APIs."""
        return _version(await self._call(self._kernel.GetVersion, kernel_pb2.GetVersionRequest()))

    async def status(self) -> KernelStatus:
        """Return uptime, components, books and the trading state."""
        return _status(await self._call(self._kernel.GetStatus, kernel_pb2.GetStatusRequest()))

    async def risk_state(self) -> RiskState:
        """Return the risk engine's trading state and counters."""
        response = await self._call(self._risk.GetRiskState, risk_pb2.GetRiskStateRequest())
        return _risk_state(response.state)

    async def halt(self, reason: str) -> RiskState:
        """Halt trading and cancel every working order (scope ``trade``)."""
        response = await self._call(self._risk.Halt, risk_pb2.HaltRequest(reason=reason))
        return _risk_state(response.state)

    async def resume(self, reason: str, state: str = "active") -> RiskState:
        """Resume trading, ``"active"`` or ``"reducing"`` (scope ``admin``)."""
        response = await self._call(self._risk.Resume, _resume_request(reason, state))
        return _risk_state(response.state)

    async def submit_order(self, order: OrderRequest) -> OrderView:
        """Submit an order through the risk checks; a denial is an answer, not an error."""
        instrument = await self.instrument(order.venue, order.symbol)
        response = await self._call(self._orders.SubmitOrder, _order_request(order, instrument))
        return _order_view(response.order, instrument, response.denial_reason, response.replayed)

    async def cancel_order(self, client_order_id: str) -> OrderView:
        """Ask for an order's working remainder to be cancelled; :class:`NotFound` when unknown."""
        response = await self._call(
            self._orders.CancelOrder, orders_pb2.CancelOrderRequest(client_order_id=client_order_id)
        )
        return self._view(response.order)

    async def cancel_all(self, venue: str = "", symbol: str = "") -> list[str]:
        """Cancel every working order (of ``venue``/``symbol``); return their client order ids."""
        request = orders_pb2.CancelAllOrdersRequest(
            filter=orders_pb2.OrderFilter(venue=venue, symbol=symbol)
        )
        return list((await self._call(self._orders.CancelAllOrders, request)).client_order_ids)

    async def list_orders(
        self, *, open_only: bool = False, limit: int | None = None
    ) -> list[OrderView]:
        """Return orders, newest first, following pages up to ``limit`` orders."""
        views: list[OrderView] = []
        token = ""
        while limit is None or len(views) < limit:
            request = orders_pb2.ListOrdersRequest(open_only=open_only, page_token=token)
            response = await self._call(self._orders.ListOrders, request)
            views.extend(self._view(message) for message in response.orders)
            token = response.next_page_token
            if not token:
                break
        return views if limit is None else views[:limit]

    def _view(self, message: orders_pb2.OrderUpdate) -> OrderView:
        return _order_view(message, self._instruments.known.get((message.venue, message.symbol)))

    async def positions(self, *, include_flat: bool = False) -> list[PositionView]:
        """Return the positions, with cost and P&L."""
        request = portfolio_pb2.GetPositionsRequest(include_flat=include_flat)
        response = await self._call(self._portfolio.GetPositions, request)
        return [_position(p) for p in response.positions]

    async def plugins(self) -> list[PluginView]:
        """Return every plug-in the kernel found, defaults first, then by name."""
        response = await self._call(self._plugins.ListPlugins, plugins_pb2.ListPluginsRequest())
        return [_plugin(p) for p in response.plugins]

    async def enable_plugin(self, name: str) -> PluginView:
        """Switch a plug-in the kernel loaded back on (scope ``admin``)."""
        request = plugins_pb2.EnablePluginRequest(name=name)
        return _plugin((await self._call(self._plugins.EnablePlugin, request)).plugin)

    async def disable_plugin(self, name: str) -> PluginView:
        """Switch a loaded plug-in off: its strategies stop, their orders are cancelled."""
        request = plugins_pb2.DisablePluginRequest(name=name)
        return _plugin((await self._call(self._plugins.DisablePlugin, request)).plugin)

    async def models(self, name: str = "") -> list[ModelView]:
        """Return the model versions (only ``name``'s when given), by name, then load time."""
        request = models_pb2.ListModelsRequest(name=name)
        response = await self._call(self._models.ListModels, request)
        return [_model(m) for m in response.models]

    async def load_model(
        self, name: str, version: str, uri: str = "", sha256: str = ""
    ) -> ModelView:
        """Load and validate a version (from the repository, or ``uri`` with its ``sha256``).

        ``uri = "component:NAME"`` (no ``sha256``) loads a version answered by
        the kernel's model component NAME.
        """
        request = models_pb2.LoadModelRequest(name=name, version=version, uri=uri, sha256=sha256)
        return _model((await self._call(self._models.LoadModel, request)).model)

    async def promote_model(self, name: str, version: str) -> ModelView:
        """Make a loaded version production; the one before is retired (scope ``admin``)."""
        request = models_pb2.PromoteModelRequest(name=name, version=version)
        return _model((await self._call(self._models.PromoteModel, request)).model)

    async def shadow_model(self, name: str, version: str) -> ModelView:
        """Run a loaded version in shadow beside production (scope ``admin``)."""
        request = models_pb2.ShadowModelRequest(name=name, version=version)
        return _model((await self._call(self._models.ShadowModel, request)).model)

    async def canary_model(
        self, name: str, version: str, canary_bps: int = 0, instruments: Sequence[str] = ()
    ) -> ModelView:
        """Route ``instruments`` (``venue.symbol``) and a share of the rest to a version."""
        request = models_pb2.CanaryModelRequest(
            name=name, version=version, canary_bps=canary_bps, instruments=list(instruments)
        )
        return _model((await self._call(self._models.CanaryModel, request)).model)

    async def rollback_model(self, name: str, from_version: str) -> ModelView:
        """Leave production ``from_version`` for the production version before it."""
        request = models_pb2.RollbackModelRequest(name=name, from_version=from_version)
        return _model((await self._call(self._models.RollbackModel, request)).model)

    async def book_snapshot(self, venue: str, symbol: str, depth: int = 0) -> BookSnapshot:
        """Return one book now (``depth`` levels a side, 0: all) at the instrument's precisions."""
        instrument = await self.instrument(venue, symbol)
        request = market_data_pb2.GetBookSnapshotRequest(
            instrument=types_pb2.InstrumentId(venue=venue, symbol=symbol), depth=depth
        )
        response = await self._call(self._market.GetBookSnapshot, request)
        return _snapshot(response.snapshot, instrument)

    async def stream_books(
        self,
        instruments: Iterable[tuple[str, str]],
        *,
        depth: int = 0,
        throttle_ms: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[BookEvent]:
        """Yield a snapshot per ``(venue, symbol)``, then deltas and status changes.

        The stream ends when the caller stops iterating (the call is cancelled),
        when the server ends it, or after ``timeout`` seconds.
        """
        wanted = list(instruments)
        known = {(v, s): await self.instrument(v, s) for v, s in wanted}
        call = self._market.StreamBooks(
            _stream_request(wanted, depth, throttle_ms), metadata=self._metadata, timeout=timeout
        )
        try:
            async for message in call:
                event = _book_event(message, known)
                if event is not None:
                    yield event
        except grpc.RpcError as error:
            raise _api_error(error) from None
        finally:
            call.cancel()
