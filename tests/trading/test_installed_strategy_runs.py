"""A strategy from a pip-installed distribution is listed, configured and trades in a real run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "kernel" / "data" / "binance_spot" / "btcusdt_20240808_head12000.gz"

MODULE = '''
from tradekernel_sdk import OrderIntent, Strategy, hookimpl
from tradekernel_sdk.orders import OrderSide, OrderType

TRADEKERNEL_API = "1.0"


class BuyOnce(Strategy):
    """Buy ``quantity`` at market on the first book update, then watch."""

    class Config(Strategy.Config, frozen=True):
        venue: str
        symbol: str
        quantity: int

    def on_start(self):
        self.sent = False

    def on_book(self, update, book):
        if not self.sent:
            self.sent = True
            self.context.submit(OrderIntent(
                symbol=self.config.symbol, venue=self.config.venue, side=OrderSide.BUY,
                order_type=OrderType.MARKET, quantity=self.config.quantity,
            ))


@hookimpl
def register_strategies(register):
    register("buy_once", BuyOnce)
'''


def _pip(*arguments: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    suffix = uuid.uuid4().hex[:8]
    name, module = f"tk-buy-once-{suffix}", f"tk_buy_once_{suffix}"
    root = tmp_path_factory.mktemp("buy-once")
    (root / f"{module}.py").write_text(MODULE)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.0.1"
        dependencies = ["tradekernel-sdk"]

        [project.entry-points.tradekernel]
        buy_once = "{module}"

        [tool.setuptools]
        py-modules = ["{module}"]
    """)
    )
    _pip("install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(root))
    try:
        yield name
    finally:
        _pip("uninstall", "--quiet", "--yes", name)


def test_installed_strategy_is_listed_and_trades(distribution: str, tmp_path: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "kernel", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plugins = {plugin["name"]: plugin for plugin in json.loads(listing.stdout)["plugins"]}
    assert plugins["buy_once"]["status"] == "enabled"
    assert plugins["buy_once"]["distribution"] == distribution

    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [metrics]
        enabled = false

        [[replay]]
        venue = "binance"
        files = ["{DATA}"]

        [strategies.first_buy]
        strategy = "buy_once"
        venue = "binance"
        symbol = "BTCUSDT"
        quantity = 100_000
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config), "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    trading = json.loads(done.stdout.strip().splitlines()[-1])["trading"]
    assert trading["strategies"]["first_buy"]["callbacks"] > 100
    assert trading["orders"] == {"filled": 1}
    assert trading["positions"] == {"paper.BTCUSDT": "0.00100000"}


def test_unknown_strategy_name_is_refused_naming_the_installed_ones(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [[replay]]
        venue = "binance"
        files = ["{DATA}"]

        [strategies.typo]
        strategy = "imbalanse"
        venue = "binance"
        symbol = "BTCUSDT"
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "strategies.typo.strategy: no strategy 'imbalanse' is registered" in done.stderr
    assert "imbalance" in done.stderr


def test_invalid_strategy_setting_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "kernel.toml"
    config.write_text(
        textwrap.dedent(f"""
        [[replay]]
        venue = "binance"
        files = ["{DATA}"]

        [strategies.imbalance_btc]
        strategy = "imbalance"
        venue = "binance"
        symbol = "BTCUSDT"
        tick = 1_000_000
        lot = 1_000
        quantity = "a lot"
        max_position = 500_000
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "strategies.imbalance_btc.quantity: Expected int, got str" in done.stderr
