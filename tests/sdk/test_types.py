"""Domain types are immutable and travel as MessagePack any reader understands."""

from __future__ import annotations

import msgpack
import msgspec
import pytest

from tradekernel_sdk import codec
from tradekernel_sdk.types import (
    AggressorSide,
    Bar,
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    Instrument,
    Quote,
    Trade,
)

EXAMPLES = [
    Instrument("binance", "BTCUSDT", 8, 8, tick=1_000_000, lot=1000, base="BTC", quote="USDT"),
    BookDelta("binance", "BTCUSDT", ((6173763, 0),), ((6183764, 154698),), 10, 12, 1, 2),
    BookSnapshot("binance", "BTCUSDT", ((2, 1), (1, 1)), ((3, 1),), 9, 1, 2),
    Quote("binance", "BTCUSDT", 1, 2, 3, 4, 5, 6, 7),
    Trade("binance", "BTCUSDT", 1, 2, AggressorSide.SELL, "3735683259", 6, 7),
    Bar("binance", "BTCUSDT", 60_000_000_000, 1, 3, 0, 2, 10, 0),
    BookStatus("binance", "BTCUSDT", BookState.INVALID, "gap: U=5 but previous u=3", 3, 7),
]


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda value: type(value).__name__)
def test_round_trip_through_msgpack(value: object) -> None:
    data = codec.encode(value)
    assert codec.decode(data) == value
    # Plain MessagePack readers see an array tagged with the type name.
    plain = msgpack.unpackb(data)
    assert plain[0] == type(value).__name__


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda value: type(value).__name__)
def test_types_are_immutable(value: msgspec.Struct) -> None:
    field = value.__struct_fields__[0]
    with pytest.raises(AttributeError):
        setattr(value, field, "changed")


def test_instrument_converts_its_own_strings() -> None:
    instrument = Instrument("binance-usdm", "BTCUSDT", 2, 3, tick=10, lot=1)
    assert instrument.price("61800.20") == 6180020
    assert instrument.size_text(14) == "0.014"
    assert instrument.key == "binance-usdm.BTCUSDT"


def test_decoding_garbage_raises_a_clear_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode(msgpack.packb(["Nope", 1]))


def test_order_messages_round_trip_through_msgpack() -> None:
    from tradekernel_sdk.orders import (
        Liquidity,
        OrderFilled,
        OrderRequest,
        OrderSide,
        OrderType,
        TimeInForce,
    )

    request = OrderRequest(
        "c-1", "paper", "BTCUSDT", OrderSide.BUY, OrderType.LIMIT, 5, 100, TimeInForce.IOC, 7
    )
    fill = OrderFilled("c-1", "v-1", "paper", "BTCUSDT", 8, "f-1", 100, 5, 0, 12, Liquidity.TAKER)
    for value in (request, fill):
        assert codec.decode(codec.encode(value)) == value
