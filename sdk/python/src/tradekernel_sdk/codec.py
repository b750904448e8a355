"""MessagePack encoding of the SDK's market-data and order types.

Each value encodes as a MessagePack array whose first element names its type
(``["Quote", "binance", "BTCUSDT", ...]``), so any MessagePack reader can decode
it and :func:`decode` restores the typed object.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradekernel_sdk import orders, types

__all__ = ["SERIALISABLE_TYPES", "decode", "encode"]

SERIALISABLE_TYPES: tuple[type[Any], ...] = (
    types.Instrument,
    types.BookDelta,
    types.BookSnapshot,
    types.Quote,
    types.Trade,
    types.Bar,
    types.BookStatus,
    orders.OrderRequest,
    orders.CancelRequest,
    orders.OrderAccepted,
    orders.OrderRejected,
    orders.OrderFilled,
    orders.OrderCanceled,
    orders.OrderExpired,
    orders.CancelRejected,
    orders.OrderUpdate,
)

_Serialisable = (
    types.Instrument
    | types.BookDelta
    | types.BookSnapshot
    | types.Quote
    | types.Trade
    | types.Bar
    | types.BookStatus
    | orders.OrderRequest
    | orders.CancelRequest
    | orders.OrderEvent
    | orders.OrderUpdate
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_Serialisable)


def encode(value: Any) -> bytes:
    """Encode a domain object as MessagePack bytes."""
    return _encoder.encode(value)


def decode(data: bytes) -> Any:
    """Decode bytes written by :func:`encode` back into the typed domain object."""
    return _decoder.decode(data)
