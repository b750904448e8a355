"""OKX instrument metadata: precision and increments from the REST instruments bodies."""

from __future__ import annotations

import orjson
import pytest

from kernel.adapters.okx import load_okx_instruments, parse_okx_instruments
from kernel.adapters.okx.instruments import instrument_from_okx
from tradekernel_sdk.types import Instrument


def test_spot_precision_comes_from_tick_and_lot(okx_catalog: dict[str, Instrument]) -> None:
    btc = okx_catalog["BTC-USDT"]
    assert btc == Instrument(
        venue="okx",
        symbol="BTC-USDT",
        price_precision=1,  # tickSz 0.1
        size_precision=8,  # lotSz 0.00000001, minSz 0.00001
        tick=1,
        lot=1,
        base="BTC",
        quote="USDT",
    )
    assert btc.price("30243.5") == 302435
    assert btc.size("1.55896972") == 155896972


def test_derivatives_use_their_underlying_for_base_and_quote(
    okx_catalog: dict[str, Instrument],
) -> None:
    swap = okx_catalog["UNI-USD-SWAP"]
    assert (swap.price_precision, swap.size_precision, swap.tick, swap.lot) == (3, 0, 1, 1)
    assert (swap.base, swap.quote) == ("UNI", "USD")
    future = okx_catalog["BTC-USD-220527"]
    assert (future.price_precision, future.size_precision) == (1, 0)


def test_a_tick_that_is_not_a_power_of_ten_is_kept_in_units(
    okx_catalog: dict[str, Instrument],
) -> None:
    option = okx_catalog["ETH-USD-220514-1300-C"]  # tickSz 0.0005
    assert (option.price_precision, option.tick) == (4, 5)


def test_the_capture_holds_every_instrument_type(okx_catalog: dict[str, Instrument]) -> None:
    assert len(okx_catalog) > 1000
    assert all(instrument.venue == "okx" for instrument in okx_catalog.values())
    assert all(instrument.tick > 0 and instrument.lot > 0 for instrument in okx_catalog.values())


def _entry(**fields: str) -> dict[str, str]:
    entry = {"instId": "X-USDT", "tickSz": "0.01", "lotSz": "0.001", "minSz": "0.01"}
    entry.update(fields)
    return entry


def test_trailing_zeros_do_not_widen_precision() -> None:
    instrument = instrument_from_okx(_entry(tickSz="0.10", lotSz="1.000", minSz="1"))
    assert (instrument.price_precision, instrument.tick) == (1, 1)
    assert (instrument.size_precision, instrument.lot) == (0, 1)


def test_size_precision_covers_a_finer_minimum_size() -> None:
    instrument = instrument_from_okx(_entry(lotSz="1", minSz="0.1"))
    assert (instrument.size_precision, instrument.lot) == (1, 10)


def test_invalid_entries_are_skipped_and_the_rest_kept() -> None:
    body = orjson.dumps(
        {
            "code": "0",
            "msg": "",
            "data": [_entry(), {"instId": "NO-TICK"}, _entry(instId="Y-USDT", tickSz="0")],
        }
    )
    assert [instrument.symbol for instrument in parse_okx_instruments(body)] == ["X-USDT"]


def test_an_error_response_is_rejected() -> None:
    with pytest.raises(ValueError, match="50011"):
        parse_okx_instruments(b'{"code":"50011","msg":"Too Many Requests","data":[]}')


def test_loader_takes_lines_ignores_other_urls_and_keeps_the_latest() -> None:
    url = "https://www.okx.com/api/v5/public/instruments?instType=SPOT"
    old = orjson.dumps({"code": "0", "msg": "", "data": [_entry(tickSz="0.1")]}).decode()
    new = orjson.dumps({"code": "0", "msg": "", "data": [_entry(tickSz="0.01")]}).decode()
    lines = [
        f"{url} -> 1652458996.25: {old}\n",
        "https://www.okx.com/api/v5/market/books?instId=X-USDT -> 1652458997.1: {}\n",
        'configuration: {"l2_book": ["X-USDT"]}\n',
        f"{url} -> 1652459032.85: {new}\n",
    ]
    assert load_okx_instruments(lines)["X-USDT"].price_precision == 2
