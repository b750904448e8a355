"""Live Binance order entry: a venue the order manager routes to as it routes to the paper one.

:class:`BinanceOrderEntry` registers ``<venue>.submit`` and ``<venue>.cancel``
on the bus and publishes what Binance answers on ``events.order.<venue>``
(:class:`~kernel.orders.manager.OrderVenue`). Orders travel over signed REST
(:mod:`.rest`: signing, the venue's clock, weights and order counts); what
happens to them afterwards arrives on the user-data stream and, after every
reconnect, from reconciliation (:mod:`.venue`). The rules and the pages they
come from are listed in ``docs/venues.md``, "Order entry: Binance".
"""

from kernel.live.binance_orders.rest import (
    ERROR_MEANINGS,
    SPOT,
    USDM,
    BinanceRest,
    OrderApi,
    OutcomeUnknownError,
    VenueClock,
    VenueError,
    rejection_reason,
)
from kernel.live.binance_orders.venue import (
    BinanceOrderEntry,
    KernelOrders,
    Positions,
    ReconcileReport,
    ResponseType,
    commission_in_quote,
    venue_client_id,
)

__all__ = [
    "ERROR_MEANINGS",
    "SPOT",
    "USDM",
    "BinanceOrderEntry",
    "BinanceRest",
    "KernelOrders",
    "OrderApi",
    "OutcomeUnknownError",
    "Positions",
    "ReconcileReport",
    "ResponseType",
    "VenueClock",
    "VenueError",
    "commission_in_quote",
    "rejection_reason",
    "venue_client_id",
]
