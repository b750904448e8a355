"""What a live venue's order entry keeps about each order it routed or adopted.

Binance and OKX order entry track orders alike: the ids on both sides, how
much has filled (trade ids, so a fill seen on the stream and again through
REST counts once), whether the order is closed, and the request placing it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tradekernel_sdk.orders import OrderCanceled, OrderEvent, OrderExpired, OrderRejected

__all__ = ["ClosingKind", "TrackedOrder", "closing_event"]

ClosingKind = type[OrderCanceled] | type[OrderExpired] | type[OrderRejected]


@dataclass
class TrackedOrder:
    """One order a live venue adapter routed, or took over from the journal."""

    client_order_id: str
    symbol: str
    quantity: int
    venue_client_id: str = ""
    """The id the venue knows the order by (each venue's ``venue_client_id``)."""
    venue_order_id: str = ""
    accepted: bool = False
    filled: int = 0
    trade_ids: set[str] = field(default_factory=set)
    closed: bool = False
    placing: asyncio.Task[None] | None = None


def closing_event(
    tracked: TrackedOrder, kind: ClosingKind, venue: str, reason: str
) -> OrderEvent | None:
    """Mark ``tracked`` closed and return the event that closes it; None if it already was."""
    if tracked.closed:
        return None
    tracked.closed = True
    now = time.time_ns()
    cid, venue_id, symbol = tracked.client_order_id, tracked.venue_order_id, tracked.symbol
    if kind is OrderCanceled:
        return OrderCanceled(cid, venue_id, venue, symbol, now)
    if kind is OrderExpired:
        return OrderExpired(cid, venue_id, venue, symbol, now, reason)
    return OrderRejected(cid, "", venue, symbol, now, reason)
