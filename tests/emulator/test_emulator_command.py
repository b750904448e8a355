"""``tradekernel emulator`` serves what it prints, and stops on SIGINT."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys

import orjson
import websockets
from emulator_clients import BINANCE_BTC, run


def test_the_emulator_command_prints_the_urls_it_serves_and_stops_on_sigint() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kernel",
            "emulator",
            "--venue",
            "binance",
            "--data",
            str(BINANCE_BTC),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = [process.stdout.readline() for _ in range(6)]
        rest_line = next(line for line in printed if line.strip().startswith("rest"))
        port = re.search(r"127\.0\.0\.1:(\d+)/api/v3", rest_line)
        assert port is not None, printed
        url = f"ws://127.0.0.1:{port.group(1)}/ws/btcusdt@depth@100ms"

        diffs: list[dict] = []

        async def read_first_diff() -> None:
            async with websockets.connect(url, max_queue=None) as ws:
                diffs.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10)))

        run(read_first_diff(), timeout=30)
        assert diffs[0]["e"] == "depthUpdate"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "emulator stopped: connections 1" in output
