"""OKX v5 instrument metadata: REST ``/api/v5/public/instruments`` bodies to :class:`Instrument`.

Precision comes from the venue's increments: ``price_precision`` is the number of
decimals of ``tickSz`` and ``size_precision`` the larger of those of ``lotSz`` and
``minSz``, so every valid price and size is an exact integer at that scale.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from tradekernel_sdk.fixedpoint import decimal_places, to_fixed
from tradekernel_sdk.types import Instrument

__all__ = ["VENUE", "instrument_from_okx", "load_okx_instruments", "parse_okx_instruments"]

log = logging.getLogger(__name__)

VENUE = "okx"
_INSTRUMENTS_PATH = "/api/v5/public/instruments"


def _minimal(text: str) -> str:
    """Drop trailing fractional zeros so ``"0.10"`` counts one decimal, not two."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _base_quote(entry: Mapping[str, Any]) -> tuple[str, str]:
    base = entry.get("baseCcy") or ""
    quote = entry.get("quoteCcy") or ""
    if not (base and quote):
        # Derivatives name their underlying instead: "BTC-USD".
        underlying = entry.get("uly") or entry.get("instFamily") or ""
        if isinstance(underlying, str) and underlying.count("-") == 1:
            base, quote = underlying.split("-")
    return str(base), str(quote)


def instrument_from_okx(entry: Mapping[str, Any]) -> Instrument:
    """Build an :class:`Instrument` from one element of an instruments response's ``data``.

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` when a field is missing or invalid.
    """
    symbol = entry["instId"]
    tick_text = _minimal(entry["tickSz"])
    lot_text = _minimal(entry["lotSz"])
    min_text = _minimal(entry.get("minSz") or lot_text)
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"invalid instId {symbol!r}")
    price_precision = decimal_places(tick_text)
    size_precision = max(decimal_places(lot_text), decimal_places(min_text))
    tick = to_fixed(tick_text, price_precision)
    lot = to_fixed(lot_text, size_precision)
    if tick <= 0 or lot <= 0:
        raise ValueError(f"{symbol}: tickSz and lotSz must be positive")
    base, quote = _base_quote(entry)
    return Instrument(
        venue=VENUE,
        symbol=symbol,
        price_precision=price_precision,
        size_precision=size_precision,
        tick=tick,
        lot=lot,
        base=base,
        quote=quote,
    )


def parse_okx_instruments(body: bytes | str | Mapping[str, Any]) -> list[Instrument]:
    """Parse one instruments response body, skipping (and logging) invalid entries.

    Raises ``ValueError`` when the body is not JSON or reports an error code.
    """
    message = orjson.loads(body) if isinstance(body, bytes | str) else body
    if not isinstance(message, Mapping):
        raise ValueError("instruments body is not a JSON object")
    code = message.get("code")
    if code not in ("0", 0):
        raise ValueError(f"instruments request failed: code={code!r} msg={message.get('msg')!r}")
    data = message.get("data")
    if not isinstance(data, list):
        raise ValueError("instruments body has no data list")
    instruments = []
    for entry in data:
        try:
            instruments.append(instrument_from_okx(entry))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("skipping OKX instrument entry %r: %s", entry, exc)
    return instruments


def _read_lines(path: str | os.PathLike[str]) -> list[str]:
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.readlines()


def load_okx_instruments(
    path_or_lines: str | os.PathLike[str] | Iterable[str],
) -> dict[str, Instrument]:
    """Load instruments from a capture of REST bodies (cryptofeed's ``url -> ts: body`` lines).

    Accepts a path (gzip when it ends in ``.gz``) or the lines themselves. Lines
    that are not instruments responses are ignored; when an instrument appears in
    several responses, the latest wins. Returns instruments by symbol (``instId``).
    """
    lines = (
        _read_lines(path_or_lines)
        if isinstance(path_or_lines, str | os.PathLike)
        else path_or_lines
    )
    instruments: dict[str, Instrument] = {}
    for number, line in enumerate(lines, 1):
        url, arrow, rest = line.partition(" -> ")
        if not arrow or _INSTRUMENTS_PATH not in url:
            continue
        _, colon, body = rest.partition(": ")
        if not colon:
            log.warning("line %d: no body after the timestamp", number)
            continue
        try:
            parsed = parse_okx_instruments(body)
        except ValueError as exc:
            log.warning("line %d: %s", number, exc)
            continue
        for instrument in parsed:
            instruments[instrument.symbol] = instrument
    return instruments
