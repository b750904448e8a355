"""tradekernel SDK: what plug-ins and components build on.

Prices and sizes are fixed-point integers (:mod:`tradekernel_sdk.fixedpoint`);
market events are immutable structs (:mod:`tradekernel_sdk.types`) that encode
to MessagePack (:mod:`tradekernel_sdk.codec`).
"""

from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError, from_fixed, to_fixed
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Level,
    MarketEvent,
    Quote,
    Trade,
)

__version__ = "0.1.0"

__all__ = [
    "AggressorSide",
    "Bar",
    "BookDelta",
    "BookSnapshot",
    "BookState",
    "BookStatus",
    "FixedConverter",
    "FixedPointError",
    "Instrument",
    "Level",
    "MarketEvent",
    "Quote",
    "Trade",
    "from_fixed",
    "to_fixed",
]
