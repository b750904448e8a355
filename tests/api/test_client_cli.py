"""The API commands of the command line against a live server."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_client_sync import USDT, LiveServer, frames, limit_buy, live
from test_server_api import ADMIN_TOKEN, READ_TOKEN, TRADE_TOKEN

from kernel.cli_api import API_COMMANDS, TOKEN_ENV, add_api_commands, run_api_command
from tradekernel_sdk.client import KernelClient

__all__ = ["frames", "live"]

ROOT = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    """Return a parser with only the API commands."""
    result = argparse.ArgumentParser(prog="tradekernel")
    add_api_commands(result.add_subparsers(dest="command", required=True))
    return result


def call(argv: list[str]) -> tuple[int, str, str]:
    """Run one command; return its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = run_api_command(parser().parse_args(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_registers_exactly_the_api_commands() -> None:
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == API_COMMANDS
    assert {"status", "orders", "positions", "halt", "resume", "models"} == API_COMMANDS


def test_status(live: LiveServer) -> None:
    code, out, err = call(["status", "--address", live.address, "--token", READ_TOKEN])
    assert code == 0, err
    assert out.startswith("trading      active")
    assert "binance.BTCUSDT" in out and "valid" in out
    assert READ_TOKEN not in out + err
    code, out, _ = call(["status", "--address", live.address, "--token", READ_TOKEN, "--json"])
    data = json.loads(out)
    assert code == 0 and data["trading_state"] == "active"
    assert {"venue": "binance", "symbol": "BTCUSDT"}.items() <= next(
        b for b in data["books"] if b["symbol"] == "BTCUSDT"
    ).items()


def test_orders_and_positions(live: LiveServer) -> None:
    price = live.best_bid() - 100 * USDT
    with KernelClient(live.address, TRADE_TOKEN) as client:
        client.submit_order(limit_buy("cli-1", price))
    connect = ["--address", live.address, "--token", READ_TOKEN]
    code, out, err = call(["orders", *connect])
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["ID", "STRATEGY", "INSTRUMENT"]
    identifier, strategy, instrument, side = row.split()[:4]
    assert (identifier, strategy, side) == ("cli-1", "api", "buy")
    assert instrument.endswith(".BTCUSDT")  # the trading venue the order was routed to
    code, out, _ = call(["orders", "--open", "--json", *connect])
    (order,) = json.loads(out)["orders"]
    assert order["quantity"] == "0.00100000"
    assert order["price"] == f"{price // USDT}.{price % USDT:08d}"
    code, out, err = call(["positions", "--all", *connect])
    assert code == 0, err
    code, out, _ = call(["positions", "--json", *connect])
    assert code == 0 and isinstance(json.loads(out)["positions"], list)


def test_halt_and_resume(live: LiveServer) -> None:
    address = ["--address", live.address]
    code, out, err = call(["halt", *address, "--token", READ_TOKEN])
    assert code == 1 and not out
    assert err.startswith("tradekernel halt: PERMISSION_DENIED") and err.count("\n") == 1
    assert READ_TOKEN not in err
    code, out, err = call(["halt", *address, "--token", TRADE_TOKEN, "--reason", "drill"])
    assert code == 0, err
    assert "halted" in out and "drill" in out
    code, out, err = call(["resume", *address, "--token", ADMIN_TOKEN, "--json"])
    assert code == 0, err
    assert json.loads(out)["state"] == "active"


def test_usage_and_api_errors(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    code, _, err = call(["status", "--address", live.address])
    assert code == 2 and TOKEN_ENV in err
    code, out, err = call(["status", "--address", live.address, "--token", "guess-42"])
    assert code == 1 and not out
    assert "UNAUTHENTICATED" in err and "guess-42" not in err
    monkeypatch.setenv(TOKEN_ENV, READ_TOKEN)
    monkeypatch.setenv("TRADEKERNEL_API_ADDRESS", live.address)
    code, out, err = call(["status"])
    assert code == 0, err
    code, _, err = call(["status", "--address", "127.0.0.1:1", "--timeout", "2"])
    assert code == 1 and "cannot use the API at 127.0.0.1:1" in err and err.count("\n") == 1


def _wired() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "kernel", "status", "--help"],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    return probe.returncode == 0


def test_subprocess_status(live: LiveServer) -> None:
    if not _wired():
        pytest.skip("`tradekernel status` is not registered in kernel/cli.py yet")
    env = {**os.environ, TOKEN_ENV: READ_TOKEN, "TRADEKERNEL_API_ADDRESS": live.address}
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "status", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trading_state"] == "active"
    assert READ_TOKEN not in done.stdout + done.stderr
    env[TOKEN_ENV] = "guess-7"
    refused = subprocess.run(
        [sys.executable, "-m", "kernel", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
