"""Components the tests serve: the first-party imbalance strategy and misbehaving ones.

Run from a shell with ``python -m tradekernel_sdk.remote component_samples:RecordingImbalance``
(with this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

import time
from typing import Any

from tradekernel_sdk import BookView, OrderIntent, Strategy
from tradekernel_sdk.orders import OrderEvent, OrderSide, OrderType, OrderUpdate, TimeInForce
from tradekernel_sdk.remote import DetectionOut
from tradekernel_sdk.types import BookDelta, BookSnapshot
from tradekernel_strategies.imbalance import Imbalance

IMBALANCE_SETTINGS: dict[str, Any] = {
    "venue": "binance",
    "symbol": "BTCUSDT",
    "tick": 1_000_000,
    "lot": 1_000,
    "quantity": 100_000,
    "max_position": 500_000,
    "depth": 5,
    "threshold_bps": 6000,
    "cooldown_ns": 2_000_000_000,
}


class RecordingImbalance(Imbalance):
    """The first-party imbalance strategy, keeping what the kernel tells it."""

    def __init__(self, context: Any, config: Strategy.Config) -> None:
        super().__init__(context, config)
        self.updates: list[OrderUpdate] = []
        self.events: list[OrderEvent] = []
        self.books = 0

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.books += 1
        super().on_book(update, book)

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)
        super().on_order_event(event)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)


class OneShot(Strategy):
    """Sends one intent on its first book: valid, or for an instrument the kernel lacks."""

    class Config(Strategy.Config, frozen=True, kw_only=True):
        venue: str
        symbol: str
        target_symbol: str = "BTCUSDT"
        quantity: int = 100_000

    config: Config

    def __init__(self, context: Any, config: Strategy.Config) -> None:
        super().__init__(context, config)
        self.sent: list[str] = []
        self.books = 0
        self.errors: list[tuple[str, str]] = []

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.books += 1
        best = book.best_ask()
        if self.sent or best is None:
            return
        intent = OrderIntent(
            symbol=self.config.target_symbol,
            venue=self.config.venue,
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            quantity=self.config.quantity,
            price=best[0],
            time_in_force=TimeInForce.IOC,
        )
        self.sent.append(self.context.submit(intent))

    def on_command_error(self, request_id: str, error: str) -> None:
        self.errors.append((request_id, error))


class Crashy(Strategy):
    """Raises on every tenth book: the kernel counts it, the session goes on."""

    class Config(Strategy.Config, frozen=True, kw_only=True):
        venue: str
        symbol: str

    def __init__(self, context: Any, config: Strategy.Config) -> None:
        super().__init__(context, config)
        self.books = 0

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.books += 1
        if self.books % 10 == 0:
            raise RuntimeError(f"book {self.books} is not to my taste")


class GreedyDetector:
    """A detector that reports crossed-looking spreads and also tries to buy (it may not)."""

    kind = "detector"
    name = "greedy_detector"

    def __init__(self) -> None:
        self.context: Any = None
        self.refusals: list[str] = []
        self.tried = False

    def on_start(self) -> None:
        self.context.subscribe("binance", "BTCUSDT")

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> DetectionOut | None:
        best = book.best_ask()
        if best is not None and not self.tried:
            self.tried = True
            self.context.submit(
                OrderIntent(
                    symbol="BTCUSDT",
                    venue="binance",
                    side=OrderSide.BUY,
                    order_type=OrderType.LIMIT,
                    quantity=100_000,
                    price=best[0],
                )
            )
            return DetectionOut("wide_spread", "binance", "BTCUSDT", "0.5", "first look")
        return None

    def on_command_error(self, request_id: str, error: str) -> None:
        self.refusals.append(error)


class Sluggish(Strategy):
    """Takes two milliseconds over every book: the kernel's queue for it overflows."""

    class Config(Strategy.Config, frozen=True, kw_only=True):
        venue: str
        symbol: str

    def __init__(self, context: Any, config: Strategy.Config) -> None:
        super().__init__(context, config)
        self.books = 0

    def on_book(self, update: BookDelta | BookSnapshot, book: BookView) -> None:
        self.books += 1
        time.sleep(0.002)
