"""Live order entry in the service: one venue per ``[[live]]`` table with ``trade = true``.

:data:`ORDER_ENTRY_VENUES` is the one table of venues the kernel can trade
live; a venue with order entry adds its row there. The order manager routes to
the venue as it routes to the paper one (:class:`~kernel.orders.manager.OrderVenue`).

:class:`LiveOrderEntryComponent` starts the venue after the trading component
has replayed the journal, so the first reconciliation sees every order the
kernel had open, and stops it before the trading component stops. While the
venue is not running its bus endpoints stay answered: an order routed then is
rejected with the reason instead of failing in the sender.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kernel.bus import Bus, topics
from kernel.live.credentials import CredentialsError, VenueCredentials, load_credentials
from tradekernel_sdk.orders import CancelRejected, CancelRequest, OrderRejected, OrderRequest
from tradekernel_sdk.types import Instrument

__all__ = [
    "ORDER_ENTRY_VENUES",
    "LiveOrderEntryComponent",
    "LiveOrderVenue",
    "OrderEntrySettings",
    "trading_credentials",
]

log = logging.getLogger(__name__)


class LiveOrderVenue(Protocol):
    """What the service needs of a venue's live order entry (``BinanceOrderEntry``, ...)."""

    venue_name: str
    stream_connected: asyncio.Event
    stream_connects: int
    reconciliations: list[Any]
    """One report per reconciliation, appended when it completes."""
    unknown_orders: set[str]

    async def start(self) -> None:
        """Connect and keep the private stream and reconciliation running."""

    async def stop(self) -> None:
        """Stop, and release the bus endpoints."""


@dataclass(frozen=True)
class OrderEntrySettings:
    """What a venue's order entry is built from."""

    venue: str
    credentials: VenueCredentials
    instruments: Callable[[str], Instrument | None]
    """The market feed's instrument lookup, by symbol."""
    orders: Any
    """The order manager, for reconciliation."""
    rest_url: str = ""
    ws_url: str = ""


def _binance(settings: OrderEntrySettings, bus: Bus) -> LiveOrderVenue:
    from kernel.live.binance_orders import SPOT, USDM, BinanceOrderEntry  # noqa: PLC0415

    return BinanceOrderEntry(
        bus,
        credentials=settings.credentials,
        instruments=settings.instruments,
        api=USDM if settings.venue == "binance-usdm" else SPOT,
        venue_name=settings.venue,
        rest_url=settings.rest_url or None,
        ws_url=settings.ws_url or None,
        orders=settings.orders,
    )


def _okx(settings: OrderEntrySettings, bus: Bus) -> LiveOrderVenue:
    from kernel.live.okx_orders import PRIVATE_URL, OkxOrderEntry  # noqa: PLC0415

    # [[live]] ws_url is the public channel's full address; the private one sits beside it.
    public = settings.ws_url
    private = public.replace("/ws/v5/public", "/ws/v5/private") if public else PRIVATE_URL
    return OkxOrderEntry(
        bus,
        credentials=settings.credentials,
        instruments=settings.instruments,
        venue_name=settings.venue,
        rest_url=settings.rest_url or None,
        private_url=private,
        orders=settings.orders,
    )


# venue -> how to build its order entry.
ORDER_ENTRY_VENUES: dict[str, Callable[[OrderEntrySettings, Bus], LiveOrderVenue]] = {
    "binance": _binance,
    "binance-usdm": _binance,
    "okx": _okx,
}


def trading_credentials(
    venue: str, *, secrets_file: Path | None, environ: Mapping[str, str] | None = None
) -> VenueCredentials:
    """Load ``venue``'s keys and check that they can trade.

    Raises :class:`~kernel.live.credentials.CredentialsError` naming what to set.
    """
    credentials = load_credentials(venue, environ=environ, secrets_file=secrets_file)
    try:
        credentials.for_trading()
    except CredentialsError as error:
        where = f"[{venue}.trade] in {secrets_file}" if secrets_file else "kernel.secrets_file"
        raise CredentialsError(f"{error}; or key and secret under {where}") from None
    return credentials


class LiveOrderEntryComponent:
    """One venue's live order entry for the life of the trading component.

    ``orders`` returns the order manager once the trading component has
    started. :meth:`start` returns when the private stream is connected and
    the first reconciliation is done, within ``ready_timeout_s``.
    """

    def __init__(
        self,
        bus: Bus,
        settings: OrderEntrySettings,
        *,
        orders: Callable[[], Any],
        ready_timeout_s: float = 20.0,
    ) -> None:
        if settings.venue not in ORDER_ENTRY_VENUES:
            raise ValueError(
                f"no live order entry for {settings.venue!r};"
                f" order-entry venues: {', '.join(ORDER_ENTRY_VENUES)}"
            )
        self.name = f"orders:{settings.venue}"
        self.venue = settings.venue
        self.bus = bus
        self.settings = settings
        self.orders = orders
        self.ready_timeout_s = ready_timeout_s
        self.entry: LiveOrderVenue | None = None
        """The venue, from :meth:`start` on (kept after :meth:`stop` for its counters)."""
        self.running = False
        self._holds_endpoints = False
        self.refused = 0
        """Orders and cancels answered while the venue was not running."""
        self._refusal = f"the {self.venue} venue is not started"
        self._endpoints = (topics.submit_endpoint(self.venue), topics.cancel_endpoint(self.venue))
        self._answer_while_down()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        orders = self.orders()
        if orders is None:
            raise RuntimeError(f"{self.name} starts after the trading component")
        self._release_endpoints()
        try:
            entry = ORDER_ENTRY_VENUES[self.venue](
                OrderEntrySettings(
                    venue=self.venue,
                    credentials=self.settings.credentials,
                    instruments=self.settings.instruments,
                    orders=orders,
                    rest_url=self.settings.rest_url,
                    ws_url=self.settings.ws_url,
                ),
                self.bus,
            )
        except BaseException:
            self._answer_while_down()
            raise
        self.entry = entry
        self._holds_endpoints = True  # the venue's own, until stop() releases them
        await entry.start()
        try:
            async with asyncio.timeout(self.ready_timeout_s):
                while not entry.reconciliations:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise RuntimeError(
                f"{self.venue}: no reconciliation within {self.ready_timeout_s:g} s"
                " (the private stream did not connect, or reconciling failed: see the log)"
            ) from None
        self.running = True
        log.info("%s ready: %s", self.name, _describe(entry.reconciliations[0]))

    async def stop(self) -> None:
        entry = self.entry if self._holds_endpoints else None
        if entry is None:
            return
        self._holds_endpoints = False
        self.running = False
        await entry.stop()
        self._refusal = f"the {self.venue} venue is stopped"
        self._answer_while_down()

    # -- status ------------------------------------------------------------------

    def health(self) -> tuple[str, str]:
        """Return ``(state, detail)`` for GetStatus: RUNNING while the private stream is up."""
        entry = self.entry
        if entry is None:
            return "PENDING", self._refusal
        if not self.running:
            return "STOPPED", self._refusal
        if not entry.stream_connected.is_set():
            return "STARTING", f"private stream not connected ({entry.stream_connects} connects)"
        if entry.unknown_orders:
            return (
                "RUNNING",
                f"{len(entry.unknown_orders)} open venue orders the kernel never placed",
            )
        return "RUNNING", ""

    def report(self) -> dict[str, Any]:
        """Return the venue's counters for the run summary."""
        entry = self.entry
        if entry is None:
            return {"running": False, "refused": self.refused}
        last = entry.reconciliations[-1] if entry.reconciliations else None
        return {
            "running": self.running,
            "stream_connects": entry.stream_connects,
            "reconciliations": len(entry.reconciliations),
            "last_reconciliation": _describe(last) if last is not None else "",
            "unknown_orders": len(entry.unknown_orders),
            "refused": self.refused,
        }

    # -- while down ------------------------------------------------------------------

    def _answer_while_down(self) -> None:
        self.bus.register_endpoint(self._endpoints[0], self._refuse_order)
        self.bus.register_endpoint(self._endpoints[1], self._refuse_cancel)

    def _release_endpoints(self) -> None:
        for name in self._endpoints:
            self.bus.deregister_endpoint(name)

    def _refuse_order(self, request: OrderRequest) -> None:
        self.refused += 1
        self.bus.publish(
            topics.orders(self.venue),
            OrderRejected(
                request.client_order_id,
                "",
                self.venue,
                request.symbol,
                time.time_ns(),
                self._refusal,
            ),
        )

    def _refuse_cancel(self, request: CancelRequest) -> None:
        self.refused += 1
        self.bus.publish(
            topics.orders(self.venue),
            CancelRejected(
                request.client_order_id,
                "",
                self.venue,
                request.symbol,
                time.time_ns(),
                self._refusal,
            ),
        )


def _describe(report: Any) -> str:
    fields = ("checked", "fills", "closed", "lost")
    parts = [f"{getattr(report, name, 0)} {name}" for name in fields]
    parts.append(f"{len(getattr(report, 'unknown_at_kernel', ()))} unknown at the kernel")
    return ", ".join(parts)
