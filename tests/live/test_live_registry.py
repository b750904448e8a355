"""Every live venue builds its connection from a [[live]] table's fields."""

from __future__ import annotations

import pytest

from kernel.adapters.registry import create_feed
from kernel.bus import Bus
from kernel.live.component import LIVE_VENUES, create_runner


@pytest.mark.parametrize("venue", sorted(LIVE_VENUES))
def test_each_live_venue_connects_its_own_feed(venue: str) -> None:
    feed = create_feed(venue, Bus())
    runner = create_runner(venue, feed, ["BTC-USD"], {"ws_url": "ws://127.0.0.1:1"})
    assert callable(runner.run) and callable(runner.stop)


def test_a_feed_of_another_venue_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a Binance feed"):
        create_runner("binance", create_feed("okx", Bus()), ["BTCUSDT"], {})


def test_an_unknown_venue_lists_the_live_ones() -> None:
    with pytest.raises(ValueError, match="live venues: binance"):
        create_runner("nasdaq", create_feed("okx", Bus()), ["AAPL"], {})


def test_bybit_opens_one_connection_per_market() -> None:
    feed = create_feed("bybit", Bus())
    runner = create_runner("bybit", feed, ["BTCUSDT", "linear:BTCUSDT", "linear:ETHUSDT"], {})
    markets = sorted(part.market for part in runner.runners)  # type: ignore[attr-defined]
    assert markets == ["linear", "spot"]
    with pytest.raises(ValueError, match="unknown Bybit market"):
        create_runner("bybit", feed, ["options:BTC"], {})
    with pytest.raises(ValueError, match="one ws_url serves one Bybit market"):
        create_runner("bybit", feed, ["BTCUSDT", "linear:BTCUSDT"], {"ws_url": "ws://x"})
