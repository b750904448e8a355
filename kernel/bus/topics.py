"""Every bus topic and endpoint name the kernel uses, built in one place.

Topics are dot-separated and hierarchical: ``data.<kind>.<venue>.<symbol>``
for market data, ``events.<kind>.<venue>`` for venue events. Subscriptions may
use ``*`` for exactly one segment and a trailing ``>`` for one or more.
"""

from __future__ import annotations

__all__ = [
    "PAPER_CANCEL",
    "PAPER_SUBMIT",
    "bar",
    "book",
    "book_status",
    "orders",
    "quote",
    "snapshot",
    "trade",
]


def book(venue: str, symbol: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.BookDelta` events (only from valid books)."""
    return f"data.book.{venue}.{symbol}"


def snapshot(venue: str, symbol: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.BookSnapshot` events, published on (re)sync."""
    return f"data.snapshot.{venue}.{symbol}"


def book_status(venue: str, symbol: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.BookStatus` events."""
    return f"data.status.{venue}.{symbol}"


def quote(venue: str, symbol: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.Quote` events."""
    return f"data.quote.{venue}.{symbol}"


def trade(venue: str, symbol: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.Trade` events."""
    return f"data.trade.{venue}.{symbol}"


def bar(venue: str, symbol: str, interval: str) -> str:
    """Topic of :class:`~tradekernel_sdk.types.Bar` events."""
    return f"data.bar.{venue}.{symbol}.{interval}"


def orders(venue: str) -> str:
    """Topic of order events (accepted, filled, cancelled, ...) from a venue."""
    return f"events.order.{venue}"


def submit_endpoint(venue: str) -> str:
    """Endpoint taking :class:`~tradekernel_sdk.orders.OrderRequest` commands for ``venue``."""
    return f"{venue}.submit"


def cancel_endpoint(venue: str) -> str:
    """Endpoint taking :class:`~tradekernel_sdk.orders.CancelRequest` commands for ``venue``."""
    return f"{venue}.cancel"


def order_updates(strategy: str) -> str:
    """Topic of the order manager's order updates for one strategy (``""``: no strategy)."""
    return f"oms.order.{strategy or '_'}"


def strategy_events(strategy: str) -> str:
    """Topic of venue order events (and risk denials) for one strategy's orders."""
    return f"oms.event.{strategy or '_'}"


RISK_EVENTS = "events.risk"
"""Topic of risk-engine events: denials and trading-state changes."""

PAPER_SUBMIT = submit_endpoint("paper")
"""Endpoint taking order requests for the paper venue."""
PAPER_CANCEL = cancel_endpoint("paper")
"""Endpoint taking cancel requests for the paper venue."""
