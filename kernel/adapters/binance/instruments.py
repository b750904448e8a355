"""Binance instrument definitions: the recorded symbols, and exchangeInfo parsing.

Precisions follow each symbol's ``PRICE_FILTER.tickSize`` and
``LOT_SIZE.stepSize`` from Binance's ``exchangeInfo`` (spot ``/api/v3``,
USD-M ``/fapi/v1``). A symbol the catalog does not know gets precisions
inferred from the decimals of the strings the venue sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tradekernel_sdk.fixedpoint import decimal_places, to_fixed
from tradekernel_sdk.types import Instrument

__all__ = [
    "KNOWN_INSTRUMENTS",
    "instrument_from_strings",
    "instruments_from_exchange_info",
]


def _instrument(
    venue: str,
    symbol: str,
    *,
    tick: str,
    step: str,
    price_precision: int,
    size_precision: int,
    base: str,
    quote: str,
) -> Instrument:
    return Instrument(
        venue=venue,
        symbol=symbol,
        price_precision=price_precision,
        size_precision=size_precision,
        tick=to_fixed(tick, price_precision),
        lot=to_fixed(step, size_precision),
        base=base,
        quote=quote,
    )


# Precisions are those of the venue's wire format, not of the order filters:
# aggregated spot book sizes carry all 8 decimals (``25.42618900`` on BTCUSDT,
# whose step is 0.00001), so a book must hold them exactly.
KNOWN_INSTRUMENTS: Mapping[str, Mapping[str, Instrument]] = {
    "binance": {
        "BTCUSDT": _instrument(
            "binance",
            "BTCUSDT",
            tick="0.01",
            step="0.00001",
            price_precision=8,
            size_precision=8,
            base="BTC",
            quote="USDT",
        ),
        "ETHUSDT": _instrument(
            "binance",
            "ETHUSDT",
            tick="0.01",
            step="0.0001",
            price_precision=8,
            size_precision=8,
            base="ETH",
            quote="USDT",
        ),
    },
    "binance-usdm": {
        "BTCUSDT": _instrument(
            "binance-usdm",
            "BTCUSDT",
            tick="0.10",
            step="0.001",
            price_precision=2,
            size_precision=3,
            base="BTC",
            quote="USDT",
        ),
        "ETHUSDT": _instrument(
            "binance-usdm",
            "ETHUSDT",
            tick="0.01",
            step="0.001",
            price_precision=2,
            size_precision=3,
            base="ETH",
            quote="USDT",
        ),
    },
    "binance-coinm": {},
}


def instrument_from_strings(
    venue: str, symbol: str, prices: Iterable[str], sizes: Iterable[str]
) -> Instrument:
    """Infer an instrument's precisions from the decimals of strings the venue sent."""
    price_precision = max((decimal_places(text) for text in prices), default=8)
    size_precision = max((decimal_places(text) for text in sizes), default=8)
    return Instrument(venue, symbol, price_precision, size_precision)


def instruments_from_exchange_info(venue: str, body: Mapping[str, Any]) -> dict[str, Instrument]:
    """Build instruments from a Binance ``exchangeInfo`` response body (spot or futures)."""
    instruments: dict[str, Instrument] = {}
    for entry in body.get("symbols", ()):
        filters = {item["filterType"]: item for item in entry.get("filters", ())}
        price_filter = filters.get("PRICE_FILTER")
        lot_filter = filters.get("LOT_SIZE")
        if price_filter is None or lot_filter is None:
            continue
        # Spot states the wire precision per asset, futures per symbol.
        price_precision = entry.get("quoteAssetPrecision", entry.get("pricePrecision"))
        size_precision = entry.get("baseAssetPrecision", entry.get("quantityPrecision"))
        if price_precision is None or size_precision is None:
            continue
        symbol = entry["symbol"]
        instruments[symbol] = _instrument(
            venue,
            symbol,
            tick=price_filter["tickSize"],
            step=lot_filter["stepSize"],
            price_precision=int(price_precision),
            size_precision=int(size_precision),
            base=entry.get("baseAsset", ""),
            quote=entry.get("quoteAsset", ""),
        )
    return instruments
