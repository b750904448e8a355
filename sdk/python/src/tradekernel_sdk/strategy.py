"""The strategy API: a base class of ``on_<event>`` callbacks and the context it acts through.

A strategy sees market data through its callbacks and the :class:`StrategyContext`
(books, positions, the clock) and acts only by handing the context
:class:`OrderIntent` objects and cancel requests: it never talks to a venue. The
kernel turns intents into orders after its risk checks, and answers with order
events (:mod:`tradekernel_sdk.orders`).

Configuration is typed. Each strategy declares a nested ``Config`` struct; the
kernel converts the operator's ``[strategies.<name>]`` TOML table into it with
:func:`load_strategy_config` before the strategy is built, so a wrong value
stops the start with a message naming the field::

    class Imbalance(Strategy):
        class Config(Strategy.Config, frozen=True):
            venue: str
            symbol: str
            threshold_bps: int = 20

        config: Config

        def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
            ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from tradekernel_sdk.orders import (
    OrderEvent,
    OrderFilled,
    OrderRequest,
    OrderSide,
    OrderType,
    TimeInForce,
)
from tradekernel_sdk.predictions import Prediction
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
    "BookView",
    "OrderIntent",
    "Strategy",
    "StrategyConfigError",
    "StrategyContext",
    "dispatch_event",
    "load_strategy_config",
]


class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """An order a strategy wants placed; the kernel assigns its client order id.

    ``price`` is required (and positive) for limit orders and must be ``None``
    for market orders. ``tag`` is free text the strategy can use to recognise
    its own orders (it travels in logs and reports, never to the venue).
    """

    symbol: str
    venue: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    tag: str = ""

    def __post_init__(self) -> None:
        """Refuse an intent no venue could accept."""
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")
        if self.order_type is OrderType.LIMIT:
            if self.price is None or self.price <= 0:
                raise ValueError(f"a limit order needs a positive price, got {self.price}")
        elif self.price is not None:
            raise ValueError("a market order carries no price")
        elif self.time_in_force is TimeInForce.POST_ONLY:
            raise ValueError("a market order cannot be post-only")

    def to_request(self, client_order_id: str, ts_submit: int = 0) -> OrderRequest:
        """Return the :class:`OrderRequest` for this intent under ``client_order_id``."""
        return OrderRequest(
            client_order_id=client_order_id,
            venue=self.venue,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            price=self.price,
            time_in_force=self.time_in_force,
            ts_submit=ts_submit,
        )


class BookView(Protocol):
    """A read-only view of one live order book (fixed-point prices and sizes)."""

    def best_bid(self) -> Level | None:
        """Return the best bid ``(price, size)``, or ``None`` when the side is empty."""

    def best_ask(self) -> Level | None:
        """Return the best ask ``(price, size)``, or ``None`` when the side is empty."""

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Return up to ``depth`` bids, best (highest) first; all of them without ``depth``."""

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Return up to ``depth`` asks, best (lowest) first; all of them without ``depth``."""


class StrategyContext(Protocol):
    """What a strategy may see and do; the kernel (or a test harness) provides it."""

    @property
    def log(self) -> logging.Logger:
        """Return the strategy's logger."""

    def clock(self) -> int:
        """Return the current time in nanoseconds (market time in a replay)."""

    def book(self, venue: str, symbol: str) -> BookView | None:
        """Return the live book of ``symbol`` on ``venue``, or ``None`` when there is none."""

    def position(self, venue: str, symbol: str) -> int:
        """Return the strategy's net position in fixed-point size units (negative: short)."""

    def submit(self, intent: OrderIntent) -> str:
        """Hand an order intent to the kernel and return the client order id it was given."""

    def cancel(self, client_order_id: str) -> None:
        """Ask for the working remainder of one of the strategy's orders to be cancelled."""

    def cancel_all(self, symbol: str | None = None) -> None:
        """Ask for every working order of the strategy (on ``symbol`` only, if given) to go."""

    def set_timer(self, name: str, interval_ns: int) -> None:
        """Call ``on_timer(name, ts_ns)`` every ``interval_ns`` from now, replacing ``name``."""

    def cancel_timer(self, name: str) -> None:
        """Stop the timer ``name``; do nothing if there is none."""


class Strategy:
    """Base class of strategies: every callback is a no-op until overridden.

    The kernel builds a strategy with its context and validated configuration,
    calls :meth:`on_start` once, then the data callbacks for what it subscribed
    to, then :meth:`on_stop` once. Callbacks run on the kernel's event loop and
    must return quickly: no blocking I/O, no sleeping.
    """

    class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
        """Base of every strategy's configuration; it has no fields.

        Declare subclasses as ``class Config(Strategy.Config, frozen=True)``:
        msgspec inherits ``frozen`` and the refusal of unknown fields, but type
        checkers want ``frozen`` repeated. ``kw_only`` is per class: put
        required fields first or pass ``kw_only=True`` as well.
        """

    config: Strategy.Config
    context: StrategyContext

    def __init__(self, context: StrategyContext, config: Strategy.Config) -> None:
        """Keep the context and configuration; raise ``TypeError`` for a foreign config type."""
        if not isinstance(config, type(self).Config):
            raise TypeError(
                f"{type(self).__name__}: config must be {type(self).Config.__qualname__}, "
                f"got {type(config).__qualname__}"
            )
        self.context = context
        self.config = config

    def on_start(self) -> None:
        """Prepare: subscribe, set timers, read positions. Called once before any data."""

    def on_stop(self) -> None:
        """Wind down: cancel orders if wanted. Called once; no data follows."""

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        """React to a book change; ``book`` already includes ``update``."""

    def on_book_status(self, status: BookStatus) -> None:
        """React to a book becoming valid or invalid (no book data while it is invalid)."""

    def on_quote(self, quote: Quote) -> None:
        """React to a best bid and offer published by the venue."""

    def on_trade(self, trade: Trade) -> None:
        """React to a public trade."""

    def on_bar(self, bar: Bar) -> None:
        """React to a completed bar."""

    def on_order_event(self, event: OrderEvent) -> None:
        """React to any event about one of the strategy's orders, fills included."""

    def on_fill(self, fill: OrderFilled) -> None:
        """React to a fill of one of the strategy's orders (after :meth:`on_order_event`)."""

    def on_timer(self, name: str, ts_ns: int) -> None:
        """React to the timer ``name`` firing at ``ts_ns``."""

    def on_prediction(self, prediction: Prediction) -> None:
        """React to a served model's answer for the strategy's instrument."""


def dispatch_event(
    strategy: Strategy, event: MarketEvent | OrderEvent, book: BookView | None = None
) -> None:
    """Call the callback of ``strategy`` that ``event`` is for.

    This is the reference routing of events to callbacks: book updates go to
    ``on_book`` with ``book`` (required for them), order events to
    ``on_order_event`` and fills to ``on_fill`` as well.
    """
    match event:
        case BookDelta() | BookSnapshot():
            if book is None:
                raise ValueError(f"{type(event).__name__} for {event.symbol} needs its book")
            strategy.on_book(event, book)
        case Quote():
            strategy.on_quote(event)
        case Trade():
            strategy.on_trade(event)
        case Bar():
            strategy.on_bar(event)
        case BookStatus():
            strategy.on_book_status(event)
        case OrderFilled():
            strategy.on_order_event(event)
            strategy.on_fill(event)
        case _:
            strategy.on_order_event(event)


class StrategyConfigError(ValueError):
    """A strategy's configuration is invalid; the message names the field."""


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<at>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<field>.+)`$")


def _config_error_message(error: msgspec.ValidationError, path: str) -> str:
    """Rewrite msgspec's message so it starts with the field's dotted path."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any string
    message, at = match["message"], match["at"] or ""
    location = path + at
    field = _FIELD.match(message)
    if field is not None:
        location = f"{location}.{field['field']}"
        message = (
            "required field missing" if field["what"] == "missing required" else "unknown field"
        )
    else:
        message = message.replace("`object`", "a table").replace("`", "")
    return f"{location}: {message}"


def load_strategy_config(cls: type[Strategy], raw: Mapping[str, Any], path: str) -> Strategy.Config:
    """Convert the TOML table ``raw`` into ``cls.Config``, the table being at ``path``.

    Raise :class:`StrategyConfigError` naming the field, for example
    ``strategies.imbalance.threshold_bps: Expected int, got str``.
    """
    try:
        return msgspec.convert(raw, cls.Config)
    except msgspec.ValidationError as error:
        raise StrategyConfigError(_config_error_message(error, path)) from None
