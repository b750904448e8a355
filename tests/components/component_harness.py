"""Run a component and link it to a real trading stack, all over loopback gRPC."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trading_stack import TradingStack

from kernel.adapters.base import RawFrame
from kernel.adapters.binance import KNOWN_INSTRUMENTS
from kernel.components import ComponentLink
from kernel.risk import RiskConfig
from kernel.service.config import ComponentSpec
from tradekernel_sdk.remote import ComponentServicer, start_server


@dataclass
class Linked:
    """A trading stack, a served component and the kernel's link to it."""

    stack: TradingStack
    link: ComponentLink
    servicer: ComponentServicer | None

    @property
    def component(self) -> Any:
        """Return the component object serving the current session (in this process)."""
        assert self.servicer is not None
        return self.servicer.component

    async def feed(self, frames: Iterable[RawFrame], *, lockstep: bool = True) -> None:
        """Feed frames to the stack; in lockstep, wait for the component after each one."""
        for index, frame in enumerate(frames):
            self.stack.feed.on_frame(frame)
            if lockstep:
                await self.link.settle()
            elif index % 64 == 0:
                await asyncio.sleep(0)


def link_to(stack: TradingStack, spec: ComponentSpec) -> ComponentLink:
    """Return a link from ``stack`` to the component ``spec`` describes (not started)."""
    return ComponentLink(
        spec,
        bus=stack.bus,
        orders=stack.orders,
        market=stack.market,
        venues=stack.venues,
        clock=stack.clock,
        instruments=KNOWN_INSTRUMENTS["binance"].values,
        kernel_version="test",
    )


@asynccontextmanager
async def linked(
    tmp_path: Path,
    target: Any,
    *,
    name: str = "remote",
    settings: dict[str, Any] | None = None,
    risk: RiskConfig | None = None,
    **spec_options: Any,
) -> AsyncIterator[Linked]:
    """Serve ``target`` on a free port in this process and link a trading stack to it."""
    stack = TradingStack(tmp_path / "journal.tkj", risk=risk)
    server, servicer, address = await start_server(target)
    spec = ComponentSpec(name=name, endpoint=address, settings=settings or {}, **spec_options)
    link = link_to(stack, spec)
    link.start()
    try:
        await link.wait_up(10)
        yield Linked(stack, link, servicer)
    finally:
        await link.stop()
        await server.stop(grace=0.5)
        stack.close()


@contextmanager
def served_in_thread(target: Any) -> Iterator[tuple[str, ComponentServicer]]:
    """Serve ``target`` on its own loop in a thread: a slow component cannot stall the kernel."""
    ready: queue.Queue[tuple[str, ComponentServicer]] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        server, servicer, address = await start_server(target)
        ready.put((address, servicer))
        await stop.wait()
        await server.stop(grace=0.5)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield ready.get(timeout=10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
