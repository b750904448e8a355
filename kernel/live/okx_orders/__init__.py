"""Live OKX order entry: a venue the order manager routes to as it routes to the paper one.

:class:`OkxOrderEntry` registers ``<venue>.submit`` and ``<venue>.cancel`` on
the bus and publishes what OKX answers on ``events.order.<venue>``
(:class:`~kernel.orders.manager.OrderVenue`). Orders travel over signed REST
(:mod:`.rest`: signing, the venue's clock, per-endpoint limits, answers); what
happens to them afterwards arrives on the private websocket's ``orders``
channel and, after every reconnect, from reconciliation (:mod:`.venue`). The
rules and the pages they come from are listed in ``docs/venues.md``, "Order
entry: OKX".
"""

from kernel.live.okx_orders.rest import (
    ENDPOINT_LIMITS,
    ERROR_MEANINGS,
    EndpointLimit,
    OkxRest,
    OkxVenueError,
    OutcomeUnknownError,
    RateLimits,
    SlidingWindow,
    VenueClock,
    iso_timestamp,
    rejection_reason,
    sign,
)
from kernel.live.okx_orders.venue import (
    PRIVATE_URL,
    KernelOrders,
    OkxOrderEntry,
    ReconcileReport,
    fee_in_quote,
    venue_client_id,
)

__all__ = [
    "ENDPOINT_LIMITS",
    "ERROR_MEANINGS",
    "PRIVATE_URL",
    "EndpointLimit",
    "KernelOrders",
    "OkxOrderEntry",
    "OkxRest",
    "OkxVenueError",
    "OutcomeUnknownError",
    "RateLimits",
    "ReconcileReport",
    "SlidingWindow",
    "VenueClock",
    "fee_in_quote",
    "iso_timestamp",
    "rejection_reason",
    "sign",
    "venue_client_id",
]
