"""Trading live on OKX from the service: an API order passes risk and the journal, then fills."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel.api import ApiServer
from kernel.emulator import Emulator
from kernel.service.builder import build
from kernel.service.config import parse_config
from tradekernel_sdk.client import AsyncKernelClient
from tradekernel_sdk.orders import OrderRequest, OrderSide, OrderStatus, OrderType
from tradekernel_sdk.types import BookState

OKX_DATA = Path(__file__).resolve().parents[2] / "kernel" / "data" / "okx_v5"
RECORDING = [OKX_DATA / "OKX.0.gz", OKX_DATA / "OKX.ws.1.0.gz"]
SYMBOL = "BTC-USDT"
TRADER = "trader-token-" + "5" * 8


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_an_api_order_fills_on_okx_and_reaches_positions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key, secret = "okx-key-" + secrets.token_hex(12), "okx-secret-" + secrets.token_hex(16)
    passphrase = "Pass-" + secrets.token_hex(8)
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        f'[okx.trade]\nkey = "{key}"\nsecret = "{secret}"\npassphrase = "{passphrase}"\n'
    )
    secrets_file.chmod(0o600)

    async def scenario() -> None:
        async with Emulator(
            "okx", RECORDING, speed=2, api_key=key, api_secret=secret, passphrase=passphrase
        ) as emulator:
            config = parse_config(
                {
                    "kernel": {
                        "state_dir": str(tmp_path / "state"),
                        "secrets_file": str(secrets_file),
                    },
                    "metrics": {"enabled": False},
                    "api": {"enabled": True, "port": 0, "tokens": {TRADER: ["read", "trade"]}},
                    "live": [
                        {
                            "venue": "okx",
                            "symbols": [SYMBOL],
                            "ws_url": f"{emulator.ws_url}/ws/v5/public",
                            "rest_url": emulator.http_url,
                            "trade": True,
                        }
                    ],
                    # A strategy that only watches (its warm-up outlasts the test): trading runs.
                    "strategies": {
                        "watcher": {
                            "strategy": "momentum",
                            "venue": "okx",
                            "symbol": SYMBOL,
                            "tick": 1,
                            "lot": 1,
                            "quantity": 1,
                            "max_position": 1,
                        }
                    },
                }
            )
            app = build(config, progress=False)
            feed = app.feeds["okx"]
            await app.lifecycle.start()
            try:
                await until(lambda: feed.book_state(SYMBOL) is BookState.VALID)
                api = next(c for c in app.lifecycle.components if isinstance(c, ApiServer))
                book, instrument = feed.book(SYMBOL), feed.instrument(SYMBOL)
                assert book is not None and instrument is not None
                best_ask = book.best_ask_price()
                assert best_ask is not None
                async with AsyncKernelClient(f"127.0.0.1:{api.port}", TRADER) as client:
                    view = await client.submit_order(
                        OrderRequest(
                            "okx-api-1",
                            "okx",
                            SYMBOL,
                            OrderSide.BUY,
                            OrderType.LIMIT,
                            10 ** (instrument.size_precision - 4),  # 0.0001 BTC
                            price=best_ask + 100 * 10 ** max(instrument.price_precision - 1, 0),
                        )
                    )
                    assert view.denial_reason is None
                assert app.trading is not None and app.trading.orders is not None
                orders = app.trading.orders
                await until(lambda: orders.orders["okx-api-1"].status is OrderStatus.FILLED)
                assert orders.portfolio.quantity("okx", SYMBOL) == 10 ** (
                    instrument.size_precision - 4
                )
                assert emulator.stats.as_dict()["fills"] >= 1
            finally:
                await app.lifecycle.stop()
            assert not app.lifecycle.stop_errors

    asyncio.run(asyncio.wait_for(scenario(), 90))
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.get_records("call")]
    assert lines
    for value in (key, secret, passphrase):
        assert not any(value in line for line in lines)
