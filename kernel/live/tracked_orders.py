"""What a live venue's order entry keeps about each order it routed or adopted.

Binance and OKX order entry track orders alike: the ids on both sides, how
much has filled (trade ids, so a fill seen on the stream and again through
REST counts once), whether the order is closed, and the request placing it.
The events that accept, fill and close an order are built here from that
bookkeeping, and :func:`keep_connected` runs either venue's private stream
(reconnects with backoff, the clock resynced beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from kernel.asyncutil import wait_set
from kernel.live.backoff import Backoff
from tradekernel_sdk.orders import (
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)

__all__ = [
    "ClosingKind",
    "TrackedOrder",
    "accepting_event",
    "closing_event",
    "filling_event",
    "keep_connected",
]

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


def accepting_event(
    tracked: TrackedOrder, venue_order_id: str, venue: str, ts_ns: int
) -> OrderAccepted | None:
    """Mark ``tracked`` accepted and return its event; None if it was accepted or closed."""
    if tracked.accepted or tracked.closed:
        return None
    tracked.accepted = True
    tracked.venue_order_id = venue_order_id
    return OrderAccepted(
        tracked.client_order_id, venue_order_id, venue, tracked.symbol, ts_ns or time.time_ns()
    )


def filling_event(
    tracked: TrackedOrder,
    venue: str,
    *,
    trade_id: str,
    price: int,
    quantity: int,
    fee: int,
    liquidity: Liquidity,
    ts_ns: int,
) -> OrderFilled:
    """Count trade ``trade_id`` on ``tracked`` (closed once fully filled) and return its event.

    The caller has checked the trade is new: ``trade_ids`` is what keeps a
    fill seen on the stream and again through REST from counting twice.
    """
    tracked.trade_ids.add(trade_id)
    tracked.filled += quantity
    leaves = max(0, tracked.quantity - tracked.filled)
    if leaves == 0:
        tracked.closed = True
    return OrderFilled(
        tracked.client_order_id,
        tracked.venue_order_id,
        venue,
        tracked.symbol,
        ts_ns or time.time_ns(),
        trade_id,
        price,
        quantity,
        leaves,
        fee,
        liquidity,
    )


async def keep_connected(
    connect_once: Callable[[], Awaitable[bool]],
    resync_clock: Callable[[], Coroutine[Any, Any, None]],
    *,
    stopping: asyncio.Event,
    backoff: Backoff,
    what: str,
    log: logging.Logger,
) -> None:
    """Run a private stream until ``stopping``: reconnect with ``backoff``, resync the clock.

    ``connect_once`` runs one connection and returns whether it was healthy
    (which resets the backoff); one that raises is logged on ``log`` as
    ``what`` failing and retried like an unhealthy one.
    """
    resync = asyncio.get_running_loop().create_task(resync_clock())
    try:
        while not stopping.is_set():
            try:
                healthy = await connect_once()
            except Exception:
                # The stream must outlive any one bad connection; say what broke.
                log.exception("%s failed", what)
                healthy = False
            if healthy:
                backoff.reset()
            if stopping.is_set():
                break
            await wait_set(stopping, backoff.next_delay())
    finally:
        resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resync
