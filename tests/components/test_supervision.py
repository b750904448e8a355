"""Spawned and dialed components on real processes: crashes, restarts, late starts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from component_harness import Linked, link_to
from component_samples import IMBALANCE_SETTINGS
from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.components import ComponentState, sdk_command
from kernel.orders import Order
from kernel.service.config import ComponentSpec
from tradekernel_sdk.orders import OrderStatus
from tradekernel_sdk.remote import READY_PREFIX
from tradekernel_sdk.strategy import load_strategy_config
from tradekernel_strategies.imbalance import Imbalance

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def samples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let spawned components import the samples module."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )


def orders_of(stack: TradingStack, name: str) -> list[Order]:
    return [order for order in stack.orders.orders.values() if order.strategy == name]


def test_a_killed_component_is_marked_down_respawned_and_trades_again_while_the_kernel_goes_on(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    stack.add("inside", Imbalance, load_strategy_config(Imbalance, IMBALANCE_SETTINGS, "inside"))
    spec = ComponentSpec(
        name="remote",
        command=tuple(sdk_command("component_samples:RecordingImbalance")),
        settings=IMBALANCE_SETTINGS,
        backoff_initial_ms=50,
        backoff_max_ms=200,
    )
    link = link_to(stack, spec)
    run = Linked(stack, link, None)
    first, middle, last = btc_frames[:2000], btc_frames[2000:2600], btc_frames[2600:]

    async def main() -> None:
        stack.runner.start()
        link.start()
        try:
            await link.wait_up(30)
            await run.feed(first)
            assert orders_of(stack, "remote"), "the spawned component traded"
            assert link.process is not None
            first_pid = link.process.pid
            inside_before = len(orders_of(stack, "inside"))

            os.kill(first_pid, signal.SIGKILL)
            for _ in range(200):
                if link.state is ComponentState.DOWN:
                    break
                await asyncio.sleep(0.01)
            assert link.state is ComponentState.DOWN
            assert link.stats.downs == 1
            assert not [o for o in stack.orders.open_orders() if o.strategy == "remote"], (
                "its working orders are cancelled while it is down"
            )
            # The kernel and its in-process strategy go on while the component is away.
            await run.feed(middle, lockstep=False)

            await link.wait_up(30)
            assert link.process is not None and link.process.pid != first_pid
            assert link.stats.spawns == 2 and link.stats.sessions == 2
            remote_before = len(orders_of(stack, "remote"))
            await run.feed(last)
            assert len(orders_of(stack, "remote")) > remote_before, "it trades again"
            assert len(orders_of(stack, "inside")) > inside_before
        finally:
            await link.stop()
            stack.runner.stop()
            stack.close()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_dialed_endpoint_that_is_not_up_yet_is_connected_when_it_comes_up(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    port = free_port()
    stack = TradingStack(tmp_path / "journal.tkj")
    spec = ComponentSpec(
        name="late",
        endpoint=f"127.0.0.1:{port}",
        settings=IMBALANCE_SETTINGS,
        backoff_initial_ms=50,
        backoff_max_ms=300,
    )
    link = link_to(stack, spec)
    process: subprocess.Popen[str] | None = None

    async def main() -> None:
        nonlocal process
        link.start()
        try:
            await link.first_attempt(10)
            assert link.state is ComponentState.DOWN
            assert "UNAVAILABLE" in link.down_reason
            await Linked(stack, link, None).feed(btc_frames[:300], lockstep=False)

            process = subprocess.Popen(
                [
                    *sdk_command("component_samples:RecordingImbalance"),
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            assert process.stdout.readline().strip() == f"{READY_PREFIX}127.0.0.1:{port}"
            await link.wait_up(15)
            await Linked(stack, link, None).feed(btc_frames[300:3000])
            assert orders_of(stack, "late")
            assert all(o.status is not OrderStatus.DENIED for o in orders_of(stack, "late"))
        finally:
            await link.stop()
            stack.close()
            if process is not None:
                process.terminate()
                process.wait(10)

    asyncio.run(main())


def test_a_hung_component_misses_its_heartbeats_and_is_replaced_by_a_new_process(
    tmp_path: Path, btc_frames: list[RawFrame]
) -> None:
    stack = TradingStack(tmp_path / "journal.tkj")
    spec = ComponentSpec(
        name="hangs",
        command=tuple(sdk_command("component_samples:RecordingImbalance")),
        settings=IMBALANCE_SETTINGS,
        heartbeat_ms=100,
        backoff_initial_ms=20,
        backoff_max_ms=50,
    )
    link = link_to(stack, spec)

    async def main() -> None:
        link.start()
        try:
            await link.wait_up(30)
            assert link.process is not None
            hung = link.process.pid
            os.kill(hung, signal.SIGSTOP)
            for _ in range(300):
                if link.state is ComponentState.DOWN:
                    break
                await asyncio.sleep(0.01)
            assert link.state is ComponentState.DOWN
            assert link.down_reason.startswith("no heartbeat for")
            await link.wait_up(30)
            assert link.process is not None and link.process.pid != hung
            await Linked(stack, link, None).feed(btc_frames[:2000])
            assert orders_of(stack, "hangs")
        finally:
            await link.stop()
            stack.close()

    asyncio.run(main())
