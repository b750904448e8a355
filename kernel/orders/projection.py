"""A SQLite projection of orders, fills and positions, for queries.

The journal is the record; this is a view of it that SQL can read (reports,
dashboards, ``sqlite3 state/orders.sqlite``). It is derived state: it is
rebuilt from the order manager after recovery and then follows its events,
written in batches off the hot path (every ``flush_every`` changes, at
:meth:`flush`, and at close). Losing it loses nothing.

Prices, sizes and amounts are stored both as exact integers (fixed point, with
their precision) and as decimal text, never as floats.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kernel.bus import Bus
from kernel.orders.manager import OrderManager
from tradekernel_sdk import codec
from tradekernel_sdk.fixedpoint import from_fixed
from tradekernel_sdk.orders import FEE_PRECISION, OrderFilled, OrderUpdate

__all__ = ["SqliteProjection", "journaled_fills"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price INTEGER,
    status TEXT NOT NULL,
    filled_quantity INTEGER NOT NULL,
    filled_notional TEXT NOT NULL,
    fees INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ts_updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    venue TEXT NOT NULL,
    fill_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    price INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    fee INTEGER NOT NULL,
    fee_text TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    ts_event INTEGER NOT NULL,
    PRIMARY KEY (venue, fill_id)
);
CREATE TABLE IF NOT EXISTS positions (
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    quantity_text TEXT NOT NULL,
    realised TEXT NOT NULL,
    realised_precision INTEGER NOT NULL,
    fees INTEGER NOT NULL,
    PRIMARY KEY (venue, symbol)
);
"""

_UPSERT_ORDER = """
INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(client_order_id) DO UPDATE SET
    status = excluded.status, filled_quantity = excluded.filled_quantity,
    filled_notional = excluded.filled_notional, fees = excluded.fees,
    reason = excluded.reason, ts_updated = excluded.ts_updated
"""
_INSERT_FILL = "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_POSITION = """
INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(venue, symbol) DO UPDATE SET
    quantity = excluded.quantity, quantity_text = excluded.quantity_text,
    realised = excluded.realised, fees = excluded.fees
"""


def journaled_fills(records: Iterable[tuple[str, Any]]) -> Iterator[OrderFilled]:
    """Yield the fills among the order manager's journal ``(kind, payload)`` records."""
    for kind, payload in records:
        if kind == "event":
            event = codec.decode(payload[0])
            if isinstance(event, OrderFilled):
                yield event


class SqliteProjection:
    """Orders, fills and positions in SQLite, following the order manager."""

    def __init__(self, path: Path, orders: OrderManager, *, flush_every: int = 256) -> None:
        self.path = path
        self.orders = orders
        self.flush_every = flush_every
        # Derived state: WAL and synchronous=NORMAL, the journal is the durable record.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._orders: dict[str, tuple[Any, ...]] = {}
        self._fills: list[tuple[Any, ...]] = []
        self._positions: set[tuple[str, str]] = set()
        self._subscriptions: list[tuple[str, Any]] = []

    def rebuild(self, fills: Iterable[OrderFilled] = ()) -> None:
        """Replace the tables with the order manager's current state and the journal's fills."""
        self._db.execute("BEGIN")
        for table in ("orders", "fills", "positions"):
            self._db.execute(f"DELETE FROM {table}")
        self._db.execute("COMMIT")
        for order in self.orders.orders.values():
            self._orders[order.client_order_id] = self._order_row(order.snapshot())
        for fill in fills:
            self._on_event(fill)
        self._positions.update(self.orders.portfolio.positions)
        self.flush()

    def follow(self, bus: Bus) -> None:
        """Record every order update and fill the order manager publishes from now on."""
        self._subscriptions = [("oms.order.>", self._on_update), ("oms.event.>", self._on_event)]
        for pattern, handler in self._subscriptions:
            bus.subscribe(pattern, handler)

    def _on_update(self, update: OrderUpdate) -> None:
        self._orders[update.client_order_id] = self._order_row(update)
        self._maybe_flush()

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, OrderFilled):
            return
        order = self.orders.orders.get(event.client_order_id)
        side = order.side.value if order is not None else ""
        self._fills.append(
            (
                event.venue,
                event.fill_id,
                event.client_order_id,
                event.symbol,
                side,
                event.price,
                event.quantity,
                event.fee,
                from_fixed(event.fee, FEE_PRECISION),
                event.liquidity.value,
                event.ts_event,
            )
        )
        self._positions.add((event.venue, event.symbol))
        self._maybe_flush()

    @staticmethod
    def _order_row(update: OrderUpdate) -> tuple[Any, ...]:
        return (
            update.client_order_id,
            update.strategy,
            update.venue,
            update.symbol,
            update.side.value,
            update.order_type.value,
            update.quantity,
            update.price,
            update.status.value,
            update.filled_quantity,
            str(update.filled_notional),
            update.fees,
            update.reason,
            update.ts_event,
        )

    def _maybe_flush(self) -> None:
        if len(self._orders) + len(self._fills) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending changes in one transaction."""
        if not (self._orders or self._fills or self._positions):
            return
        db = self._db
        db.execute("BEGIN")
        db.executemany(_UPSERT_ORDER, self._orders.values())
        db.executemany(_INSERT_FILL, self._fills)
        rows = []
        for venue, symbol in self._positions:
            position = self.orders.portfolio.positions.get((venue, symbol))
            if position is None:
                continue
            instrument = position.instrument
            rows.append(
                (
                    venue,
                    symbol,
                    position.quantity,
                    instrument.size_text(position.quantity),
                    str(position.realised),
                    position.notional_precision,
                    position.fees,
                )
            )
        db.executemany(_UPSERT_POSITION, rows)
        db.execute("COMMIT")
        self._orders.clear()
        self._fills.clear()
        self._positions.clear()

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        """Run a read-only query (after writing what is pending)."""
        self.flush()
        return list(self._db.execute(sql, parameters))

    def close(self, bus: Bus | None = None) -> None:
        """Write what is pending and close the database."""
        if bus is not None:
            for pattern, handler in self._subscriptions:
                bus.unsubscribe(pattern, handler)
        self._subscriptions = []
        self.flush()
        self._db.close()
