"""The paper venue: a simulated exchange matching orders against replayed market data."""

from kernel.paper.venue import (
    DEFAULT_FEES,
    BookLookup,
    Clock,
    FeeSchedule,
    PaperVenue,
    RestingOrder,
    VenueOrderRecord,
    VenueStore,
)

__all__ = [
    "DEFAULT_FEES",
    "BookLookup",
    "Clock",
    "FeeSchedule",
    "PaperVenue",
    "RestingOrder",
    "VenueOrderRecord",
    "VenueStore",
]
